//! Minimal SSH client for tests (russh).
