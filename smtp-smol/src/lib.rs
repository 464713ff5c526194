//! Async adapter for smol (in progress).
