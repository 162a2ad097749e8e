//! The Violet sandbox: a simulated Violet API and a signed webhook emitter.
