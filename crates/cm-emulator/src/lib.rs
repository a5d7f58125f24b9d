//! cm-emulator.
