pub mod load;
pub mod node;
pub mod redis;
pub mod tls;
