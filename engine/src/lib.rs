pub mod backtest;
pub mod book;
pub mod exec;
pub mod greeks;
pub mod market;
pub mod pipeline;
pub mod policy;
pub mod sim;
