pub mod greeks;
pub mod sim;
