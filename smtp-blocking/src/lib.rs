//! Blocking adapter (in progress).
