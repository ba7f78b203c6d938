pub mod greeks;
pub mod pipeline;
pub mod sim;
