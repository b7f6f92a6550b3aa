//! The image comparison engine and its verdict taxonomy.
