pub mod book;
pub mod greeks;
pub mod market;
pub mod pipeline;
pub mod sim;
