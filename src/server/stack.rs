//! Assembles the tower stack.
