//! The one entry-order comparator (design.md, rule 2).
