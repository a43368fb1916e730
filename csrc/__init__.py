"""C++/CUDA sources of the native backend, shipped with the package and JIT-built on first use."""
