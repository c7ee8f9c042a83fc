// Carries the precompiled LibTorch header that every target reuses.
