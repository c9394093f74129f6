//! Fault tests against real processes (being written).
