//! The Lua scripts and the one way to run them. A script is how the store makes a
//! multi-key change atomic in one round trip; each file in `lua/` starts with the KEYS
//! and ARGV it takes and the reply it gives.

use redis::{FromRedisValue, Script, ToRedisArgs};

use super::conn::Conn;
use crate::store::StoreResult;

/// For a script that takes no ARGV.
pub(super) const NO_ARGS: &[&str; 0] = &[];

/// One script, hashed once: it runs as `EVALSHA` and is loaded (`NOSCRIPT`) the first time
/// a server misses it, so a restarted or failed-over Redis needs nothing from the node.
pub(super) struct LuaScript(Script);

impl LuaScript {
    fn new(source: &str) -> Self {
        Self(Script::new(source))
    }

    /// Runs the script under the call timeout. `keys` and `args` are one value or a tuple
    /// or array of them; they are numbered KEYS[1].. and ARGV[1].. in order. A Lua `false`
    /// reply reads as `None` in an `Option<T>`.
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        conn: &Conn,
        keys: impl ToRedisArgs,
        args: impl ToRedisArgs,
    ) -> StoreResult<T> {
        let mut invocation = self.0.prepare_invoke();
        invocation.key(keys).arg(args);
        conn.call(|mut c| async move { invocation.invoke_async(&mut c).await })
            .await
    }
}

/// A script that keeps the presence totals: the prelude, `presence.lua`, then the script.
macro_rules! with_presence {
    ($($file:literal),+) => {
        concat!(
            include_str!("lua/prelude.lua"),
            include_str!("lua/presence.lua"),
            $(include_str!($file)),+
        )
    };
}

/// Every script the store runs, named as its file in `lua/`.
pub(super) struct Scripts {
    pub(super) index: LuaScript,
    pub(super) create: LuaScript,
    pub(super) end: LuaScript,
    pub(super) delete: LuaScript,
    pub(super) claim: LuaScript,
    pub(super) apply: LuaScript,
    pub(super) stats: LuaScript,
    pub(super) tick: LuaScript,
    pub(super) register: LuaScript,
    pub(super) lease: LuaScript,
    pub(super) settle: LuaScript,
    pub(super) milestones: LuaScript,
    pub(super) signups: LuaScript,
    pub(super) erase: LuaScript,
    pub(super) leave: LuaScript,
    pub(super) retarget: LuaScript,
    pub(super) forget: LuaScript,
    pub(super) count: LuaScript,
    pub(super) moveout: LuaScript,
    pub(super) org_switch: LuaScript,
    pub(super) roll: LuaScript,
    pub(super) fold: LuaScript,
    pub(super) rolled: LuaScript,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            index: LuaScript::new(include_str!("lua/index.lua")),
            create: LuaScript::new(include_str!("lua/create.lua")),
            end: LuaScript::new(concat!(include_str!("lua/events.lua"), include_str!("lua/end.lua"))),
            delete: LuaScript::new(concat!(include_str!("lua/prelude.lua"), include_str!("lua/delete.lua"))),
            claim: LuaScript::new(with_presence!("lua/claim.lua")),
            apply: LuaScript::new(with_presence!("lua/events.lua", "lua/apply.lua")),
            stats: LuaScript::new(with_presence!("lua/stats.lua")),
            leave: LuaScript::new(with_presence!("lua/leave.lua")),
            tick: LuaScript::new(concat!(include_str!("lua/events.lua"), include_str!("lua/tick.lua"))),
            register: LuaScript::new(concat!(
                include_str!("lua/events.lua"),
                include_str!("lua/register.lua")
            )),
            lease: LuaScript::new(concat!(include_str!("lua/cursors.lua"), include_str!("lua/lease.lua"))),
            settle: LuaScript::new(concat!(include_str!("lua/cursors.lua"), include_str!("lua/settle.lua"))),
            retarget: LuaScript::new(concat!(
                include_str!("lua/cursors.lua"),
                include_str!("lua/retarget.lua")
            )),
            forget: LuaScript::new(include_str!("lua/forget.lua")),
            count: LuaScript::new(include_str!("lua/count.lua")),
            moveout: LuaScript::new(include_str!("lua/moveout.lua")),
            milestones: LuaScript::new(include_str!("lua/milestones.lua")),
            signups: LuaScript::new(include_str!("lua/signups.lua")),
            erase: LuaScript::new(include_str!("lua/erase.lua")),
            org_switch: LuaScript::new(include_str!("lua/org_switch.lua")),
            roll: LuaScript::new(include_str!("lua/roll.lua")),
            fold: LuaScript::new(include_str!("lua/fold.lua")),
            rolled: LuaScript::new(include_str!("lua/rolled.lua")),
        }
    }
}
