//! Comparative harnesses of `ws-session`, in `benches/`; this library is empty.
