pub mod greeks;
