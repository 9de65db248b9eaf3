//! What each Redis master did in a phase: commands (`INFO commandstats`, commands run
//! inside scripts included) and CPU (`INFO cpu`, user + system).

use std::time::Instant;

/// One master's counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct MasterSample {
    /// Every command, script-internal ones included.
    pub calls: u64,
    /// `EVALSHA` and `EVAL` alone: one per store call that runs a script.
    pub scripts: u64,
    /// Seconds of CPU, user + system.
    pub cpu: f64,
    /// `used_memory` bytes.
    pub memory: u64,
}

/// Every master's counters at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub masters: Vec<MasterSample>,
}

/// Per master over a phase: commands/s, scripts/s, CPU share of one core (0..1), memory.
#[derive(Debug, Clone, Default)]
pub struct MasterRate {
    pub calls_per_s: f64,
    pub scripts_per_s: f64,
    pub cpu: f64,
    pub memory: u64,
}

fn field(info: &str, name: &str) -> Option<f64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Parses `INFO commandstats` + `INFO cpu` + `INFO memory` text.
pub fn parse(info: &str) -> MasterSample {
    let mut s = MasterSample::default();
    for line in info.lines() {
        let Some((name, rest)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
            continue;
        };
        let calls = rest
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        s.calls += calls;
        if name == "evalsha" || name == "eval" {
            s.scripts += calls;
        }
    }
    s.cpu = field(info, "used_cpu_user").unwrap_or(0.0) + field(info, "used_cpu_sys").unwrap_or(0.0);
    s.memory = field(info, "used_memory").unwrap_or(0.0) as u64;
    s
}

/// Connections to each master, for INFO.
pub struct Masters {
    conns: Vec<redis::aio::MultiplexedConnection>,
    pub addrs: Vec<String>,
}

impl Masters {
    pub async fn connect(addrs: &[String]) -> anyhow::Result<Masters> {
        let mut conns = Vec::new();
        for a in addrs {
            let url = if a.contains("://") {
                a.clone()
            } else {
                format!("redis://{a}")
            };
            let client = redis::Client::open(url.as_str())?;
            // INFO waits behind the scripts of a saturated master (a 200,000/s storm on
            // 50 nodes queues ~10 ms scripts): the client's default response timeout
            // (500 ms) would end the run, not measure it.
            let config =
                redis::AsyncConnectionConfig::new().set_response_timeout(Some(std::time::Duration::from_secs(60)));
            conns.push(client.get_multiplexed_async_connection_with_config(&config).await?);
        }
        Ok(Masters {
            conns,
            addrs: addrs.to_vec(),
        })
    }

    pub async fn sample(&mut self) -> anyhow::Result<Sample> {
        let mut masters = Vec::new();
        for c in &mut self.conns {
            let mut text = String::new();
            for section in ["commandstats", "cpu", "memory"] {
                let s: String = redis::cmd("INFO").arg(section).query_async(c).await?;
                text.push_str(&s);
            }
            masters.push(parse(&text));
        }
        Ok(Sample {
            at: Instant::now(),
            masters,
        })
    }
}

/// Rates between two samples.
pub fn rates(from: &Sample, to: &Sample) -> Vec<MasterRate> {
    let secs = to.at.duration_since(from.at).as_secs_f64().max(1e-3);
    from.masters
        .iter()
        .zip(&to.masters)
        .map(|(a, b)| MasterRate {
            calls_per_s: b.calls.saturating_sub(a.calls) as f64 / secs,
            scripts_per_s: b.scripts.saturating_sub(a.scripts) as f64 / secs,
            cpu: (b.cpu - a.cpu).max(0.0) / secs,
            memory: b.memory,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_command_and_counts_scripts_apart() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5\r\n\
                    cmdstat_hset:calls=32,usec=1\r\n# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.25\r\n\
                    used_cpu_sys_children:9\r\n# Memory\r\nused_memory:1024\r\n";
        let s = parse(info);
        assert_eq!((s.calls, s.scripts, s.memory), (42, 10, 1024));
        assert!((s.cpu - 3.75).abs() < 1e-9);
    }
}
