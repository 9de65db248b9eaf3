pub mod node;
pub mod redis;
