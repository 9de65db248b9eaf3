//! The open-file limit. A socket is a file: a node (and the load tool) raise their soft
//! limit to the hard one at start, since the default soft limit (1024) would cap a node at
//! a thousand viewers.

/// Raises the soft open-file limit to the hard one and returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let target = lim.maximum.or(lim.current).unwrap_or(1024);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: lim.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(1024)
}
