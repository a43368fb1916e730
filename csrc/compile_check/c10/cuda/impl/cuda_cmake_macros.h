// Stand-in for a header that CMake generates when torch is built with CUDA and that
// CPU-only torch wheels do not ship.  Used ONLY by the no-GPU compile check of
// csrc/cuda.cu (fastgan.backends.native_loader.compile_check); real CUDA builds use
// the header of the installed CUDA torch.
#pragma once
#define C10_CUDA_BUILD_SHARED_LIBS
