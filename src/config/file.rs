//! `--config FILE`: a TOML file that holds any flag of `serve` by its long name.
//!
//! The file is one more layer under clap rather than a second parser: each of its values
//! becomes the default of its flag, so a flag or a `LIVETALLY_*` variable overrides it, and
//! clap parses it with the flag's own value parser. Every setting thus has one rule for
//! what it accepts, whichever way it arrives.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, ArgMatches, Args, Command};

use super::{Config, ConfigError};

/// The `--config` flag, flattened beside [`Config`] wherever a command takes the node's
/// settings.
#[derive(Debug, Clone, Args)]
pub struct ConfigFile {
    /// TOML file of settings: any flag of `serve` by its long name (`listen =
    /// "0.0.0.0:8080"`, lists as arrays). Flags and LIVETALLY_* variables override it.
    /// Example: deploy/livetally.toml.
    #[arg(long, env = "LIVETALLY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// A file that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} is not valid TOML: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: unknown key `{key}`{hint}", path.display())]
    UnknownKey { path: PathBuf, key: String, hint: String },
    #[error("{}: `{key}`: {reason}", path.display())]
    BadValue { path: PathBuf, key: String, reason: String },
}

/// A file's settings: each key's values as they would be written after its flag.
#[derive(Debug, Clone)]
pub struct FileSettings {
    pub path: PathBuf,
    /// (clap id of the flag, its values).
    values: Vec<(String, Vec<String>)>,
}

/// The flags a file may hold: those of `serve`.
fn settings_flags() -> Command {
    Config::augment_args(Command::new("livetally"))
}

/// Reads and checks `path`: every key a flag of `serve`, every value one its flag accepts.
pub fn read(path: &Path) -> Result<FileSettings, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| FileError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim().to_owned(),
    })?;
    let flags = settings_flags();
    let mut values = Vec::with_capacity(table.len());
    for (key, value) in table {
        let Some(arg) = flags.get_arguments().find(|a| a.get_long() == Some(key.as_str())) else {
            return Err(FileError::UnknownKey {
                path: path.to_owned(),
                hint: unknown_key_hint(&flags, &key),
                key,
            });
        };
        let bad = |reason: String| FileError::BadValue {
            path: path.to_owned(),
            key: key.clone(),
            reason,
        };
        let strings = as_strings(arg, &value).map_err(bad)?;
        check_values(arg, &strings).map_err(bad)?;
        values.push((arg.get_id().to_string(), strings));
    }
    Ok(FileSettings {
        path: path.to_owned(),
        values,
    })
}

/// What a mistyped key probably meant.
fn unknown_key_hint(flags: &Command, key: &str) -> String {
    let dashed = key.replace('_', "-");
    if dashed != key && flags.get_arguments().any(|a| a.get_long() == Some(dashed.as_str())) {
        format!(" (did you mean `{dashed}`?)")
    } else {
        " (keys are the long flags of `livetally serve --help`, without the dashes)".to_owned()
    }
}

/// A TOML value as the strings its flag would be given, or why its type does not fit.
fn as_strings(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    use toml::Value as V;
    let scalar = |v: &V| match v {
        V::String(s) => Some(s.clone()),
        V::Integer(i) => Some(i.to_string()),
        V::Float(f) => Some(f.to_string()),
        _ => None,
    };
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, V::Boolean(b)) => Ok(vec![b.to_string()]),
        (ArgAction::SetTrue, _) => Err("must be true or false".to_owned()),
        (ArgAction::Append, V::Array(items)) => items
            .iter()
            .map(|v| scalar(v).ok_or_else(|| "must be a list of strings".to_owned()))
            .collect(),
        (ArgAction::Append, v) => scalar(v)
            .map(|s| vec![s])
            .ok_or_else(|| "must be a list of strings (or one comma-separated string)".to_owned()),
        (_, V::Array(_)) => Err("takes one value, not a list".to_owned()),
        (_, v) => scalar(v)
            .map(|s| vec![s])
            .ok_or_else(|| "must be a string or a number".to_owned()),
    }
}

/// Parses `values` with the flag's own value parser, so a bad one is refused here, naming
/// the file's key, rather than later under the flag's name.
fn check_values(arg: &Arg, values: &[String]) -> Result<(), String> {
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return Ok(());
    }
    // A fresh argument with only the parser: the original's `requires` and
    // `conflicts_with` name flags this one-flag command does not have.
    let long = arg.get_long().unwrap_or_default().to_owned();
    let mut probe = Arg::new("value")
        .long(long.clone())
        .action(ArgAction::Append)
        .value_parser(arg.get_value_parser().clone());
    if let Some(d) = arg.get_value_delimiter() {
        probe = probe.value_delimiter(d);
    }
    let mut argv: Vec<OsString> = Vec::with_capacity(values.len() * 2);
    for v in values {
        argv.push(format!("--{long}").into());
        argv.push(v.into());
    }
    Command::new("file")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from(argv)
        .map(drop)
        .map_err(|e| clap_reason(&e))
}

/// A clap error's message without its `error: ` prefix and usage footer.
fn clap_reason(e: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(e) {
        return source.to_string();
    }
    let text = e.render().to_string();
    let text = text.trim_start_matches("error: ");
    text.split("\n\n").next().unwrap_or(text).trim().to_owned()
}

impl FileSettings {
    /// Whether the file set the flag with this clap id.
    pub fn has(&self, id: &str) -> bool {
        self.values.iter().any(|(i, _)| i == id)
    }

    /// `cmd` with the file's values as the defaults of the flags it takes; flags it does
    /// not take are left out (a file written for `serve` serves `token` too).
    fn defaults_of(&self, mut cmd: Command) -> Command {
        for (id, vals) in &self.values {
            if cmd.get_arguments().any(|a| a.get_id() == id) {
                // Hidden: `--help` would otherwise print a secret the file holds (clap allows
                // hiding only the defaults of flags that take a value).
                cmd = cmd.mut_arg(id, |a| {
                    let hide = a.get_action().takes_values();
                    a.default_values(vals.clone()).hide_default_value(hide)
                });
            }
        }
        cmd
    }
}

/// Something that stops the command line from being used: clap's own errors (including
/// `--help` and `--version`, which clap prints), or a bad file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error(transparent)]
    File(#[from] FileError),
}

/// Parses `args` with `cmd`, then again with the `--config` file (the flag or
/// `LIVETALLY_CONFIG`) as the defaults of every command on the way to the subcommand
/// that named it. Returns the matches and the file read, if any.
pub fn parse_with_file(cmd: Command, args: Vec<OsString>) -> Result<(ArgMatches, Option<FileSettings>), LoadError> {
    let first = cmd.clone().try_get_matches_from(&args)?;
    let mut path = Vec::new();
    let Some(file) = config_path(&first, &mut path) else {
        return Ok((first, None));
    };
    let settings = read(&file)?;
    let cmd = with_defaults(cmd, &path, &settings);
    Ok((cmd.try_get_matches_from(args)?, Some(settings)))
}

/// The deepest `--config` given, and the subcommand names leading to it.
fn config_path(m: &ArgMatches, path: &mut Vec<String>) -> Option<PathBuf> {
    if let Some((name, sub)) = m.subcommand() {
        path.push(name.to_owned());
        if let Some(found) = config_path(sub, path) {
            return Some(found);
        }
        path.pop();
    }
    m.try_get_one::<PathBuf>("config").ok().flatten().cloned()
}

/// `cmd` and its subcommands along `path`, each with the file's defaults.
fn with_defaults(cmd: Command, path: &[String], file: &FileSettings) -> Command {
    let cmd = file.defaults_of(cmd);
    match path.split_first() {
        Some((name, rest)) => cmd.mut_subcommand(name, |sub| with_defaults(sub, rest, file)),
        None => cmd,
    }
}

/// The rules between flags that clap checks only for flags given on the command line,
/// not for a file's (its values are defaults to clap).
pub fn check_combinations(config: &Config) -> Result<(), ConfigError> {
    let bad = |flag, reason: &str| ConfigError {
        flag,
        reason: reason.to_owned(),
    };
    match (&config.tls_cert, &config.tls_key) {
        (Some(_), None) => return Err(bad("tls-key", "is required with --tls-cert")),
        (None, Some(_)) => return Err(bad("tls-cert", "is required with --tls-key")),
        _ => {}
    }
    if config.redis.is_some() && !config.redis_cluster.is_empty() {
        return Err(bad("redis-cluster", "cannot be used with --redis (choose one store)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        file: ConfigFile,
        #[command(flatten)]
        config: Config,
    }

    /// A TOML file in the system's temp dir, removed on drop.
    struct TempToml(PathBuf);

    impl Drop for TempToml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn file(text: &str) -> (TempToml, PathBuf) {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("livetally-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        (TempToml(path.clone()), path)
    }

    fn parse(path: &Path, extra: &[&str]) -> Result<Config, LoadError> {
        let mut args: Vec<OsString> = vec!["livetally".into(), "--config".into(), path.into()];
        args.extend(extra.iter().map(OsString::from));
        let (m, _) = parse_with_file(<Cli as clap::CommandFactory>::command(), args)?;
        Ok(Cli::from_arg_matches(&m).unwrap().config)
    }

    #[test]
    fn the_file_sets_flags_and_the_command_line_wins() {
        let (_keep, path) = file(
            "listen = \"0.0.0.0:9000\"\ntick = \"2s\"\nmax-pending = 5\nreuse-port = true\n\
             allowed-origins = [\"https://a.example\", \"https://b.example\"]\n\
             trusted-proxies = \"10.0.0.0/8,127.0.0.1\"\n",
        );
        let c = parse(&path, &["--tick", "500ms"]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.tick, std::time::Duration::from_millis(500));
        assert_eq!(c.max_pending, 5);
        assert!(c.reuse_port);
        assert_eq!(c.allowed_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(c.trusted_proxies.len(), 2);
        // Unset keys keep the flags' defaults.
        assert_eq!(c.max_interactions_per_sec, 20);
    }

    #[test]
    fn a_bad_file_names_the_key() {
        let cases = [
            ("lissen = \"0.0.0.0:1\"", "unknown key `lissen`"),
            ("max_pending = 5", "did you mean `max-pending`?"),
            ("max-pending = \"many\"", "`max-pending`"),
            ("reuse-port = \"yes\"", "`reuse-port`: must be true or false"),
            ("tick = [\"1s\"]", "`tick`: takes one value"),
            ("tick = \"1 fortnight\"", "`tick`"),
            ("log-format = \"xml\"", "`log-format`"),
            ("listen = ", "not valid TOML"),
        ];
        for (text, want) in cases {
            let (_keep, path) = file(text);
            let err = parse(&path, &[]).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn pairs_the_command_line_checks_are_checked_for_the_file_too() {
        let (_keep, path) = file("tls-cert = \"/etc/cert.pem\"\nredis = \"redis://127.0.0.1:1\"\n");
        let c = parse(&path, &[]).unwrap();
        assert_eq!(check_combinations(&c).unwrap_err().flag, "tls-key");
        let c = parse(
            &path,
            &["--tls-key", "/k.pem", "--redis-cluster", "redis://127.0.0.1:2"],
        )
        .unwrap();
        assert_eq!(check_combinations(&c).unwrap_err().flag, "redis-cluster");
    }
}
