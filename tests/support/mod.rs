pub mod load;
pub mod node;
pub mod org;
pub mod receiver;
pub mod redis;
pub mod tls;
pub mod wait;
