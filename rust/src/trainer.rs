//! Byte-level BPE training (placeholder: being written).
