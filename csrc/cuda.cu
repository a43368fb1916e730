// fastgan native CUDA kernels: the same ops as cpu.cpp, an independent implementation
// of the Triton kernels to check them against and to benchmark.
//
// Reductions are deterministic: a fixed grid (depending on the size only) writes one
// partial per block, reduced in a fixed order in shared memory; a single block then
// sums the partials in order.  No atomics.  Offsets are int64.  No host sync: the
// mean's upstream gradient is read on the device.  Kernels run on the current stream
// under a device guard.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "elementwise.h"
#include "fastgan.h"

namespace fastgan {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;
constexpr int kItems = 4;  // elements per thread per iteration

template <typename T>
struct Acc { using type = float; };
template <>
struct Acc<double> { using type = double; };

// the loss formulas: elementwise.h, with the kind chosen at run time
using elem::dterm;
using elem::term;

// block-wide sum in a fixed order (shared-memory tree)
template <typename A>
__device__ A block_sum(A v) {
  __shared__ A buf[kThreads];
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) buf[threadIdx.x] += buf[threadIdx.x + stride];
    __syncthreads();
  }
  A r = buf[0];
  __syncthreads();
  return r;
}

struct Grid {
  int blocks;
  int64_t per_block;  // elements per block (a multiple of kThreads * kItems)
};

Grid reduce_grid(int64_t n) {
  const int64_t tile = int64_t(kThreads) * kItems;
  const int64_t tiles = std::max<int64_t>(1, (n + tile - 1) / tile);
  const int64_t per = (tiles + kMaxBlocks - 1) / kMaxBlocks;
  return {static_cast<int>((tiles + per - 1) / per), per * tile};
}

// ---------------------------------------------------------------- pair family

template <typename scalar_t>
__global__ void pair_fwd_reduce_kernel(const scalar_t* __restrict__ x, int64_t n, int kind, double sgn_d,
                                       double t_d, typename Acc<scalar_t>::type* __restrict__ partial,
                                       int64_t per_block) {
  using A = typename Acc<scalar_t>::type;
  const A sgn = static_cast<A>(sgn_d), t = static_cast<A>(t_d);
  const int64_t begin = int64_t(blockIdx.x) * per_block;
  const int64_t end = min(n, begin + per_block);
  A acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) acc += term<A>(kind, static_cast<A>(x[i]), sgn, t);
  A s = block_sum<A>(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// out = w_r · Σ partial_r + w_f · Σ partial_f (+ nan for the mean of an empty side)
template <typename scalar_t>
__global__ void pair_finish_kernel(const typename Acc<scalar_t>::type* __restrict__ part_r, int nr,
                                   const typename Acc<scalar_t>::type* __restrict__ part_f, int nf, double w_r,
                                   double w_f, double bias, scalar_t* __restrict__ out) {
  using A = typename Acc<scalar_t>::type;
  A a = 0, b = 0;
  for (int i = threadIdx.x; i < nr; i += kThreads) a += part_r[i];
  for (int i = threadIdx.x; i < nf; i += kThreads) b += part_f[i];
  A sr = block_sum<A>(a);
  A sf = block_sum<A>(b);
  if (threadIdx.x == 0) out[0] = static_cast<scalar_t>(static_cast<A>(w_r) * sr + static_cast<A>(w_f) * sf + static_cast<A>(bias));
}

template <typename scalar_t>
__global__ void pair_terms_kernel(const scalar_t* __restrict__ x, scalar_t* __restrict__ out, int64_t n, int kind,
                                  double sgn_d, double t_d) {
  using A = typename Acc<scalar_t>::type;
  const A sgn = static_cast<A>(sgn_d), t = static_cast<A>(t_d);
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads)
    out[i] = static_cast<scalar_t>(term<A>(kind, static_cast<A>(x[i]), sgn, t));
}

// grad = u · w · dterm; u from a device scalar (reduced) or per element
template <typename scalar_t>
__global__ void pair_bwd_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ up, bool elementwise,
                                double w, scalar_t* __restrict__ g, int64_t n, int kind, double sgn_d, double t_d) {
  using A = typename Acc<scalar_t>::type;
  const A sgn = static_cast<A>(sgn_d), t = static_cast<A>(t_d);
  const A scalar_up = elementwise ? A(0) : static_cast<A>(up[0]) * static_cast<A>(w);
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads) {
    const A u = elementwise ? static_cast<A>(up[i]) : scalar_up;
    g[i] = static_cast<scalar_t>(u * dterm<A>(kind, static_cast<A>(x[i]), sgn, t));
  }
}

int elementwise_blocks(int64_t n) {
  return static_cast<int>(std::min<int64_t>(std::max<int64_t>(1, (n + kThreads - 1) / kThreads), 65535 * 8));
}

void check_cuda(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.is_cuda(), "fastgan native CUDA op: ", name, " must be a CUDA tensor, got ", x.device());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "fastgan native op: ", name, " must be floating point, got ",
              x.scalar_type());
}

std::vector<at::Tensor> pair_fwd_cuda(const c10::optional<at::Tensor>& real_opt, const at::Tensor& fake, int64_t kind,
                                      at::ArrayRef<double> p, int64_t reduction) {
  check_cuda(fake, "fake");
  at::Tensor real = real_opt.has_value() ? *real_opt : at::Tensor();
  if (real.defined()) {
    check_cuda(real, "real");
    TORCH_CHECK(real.device() == fake.device(), "fastgan: real and fake are on different devices");
    TORCH_CHECK(real.scalar_type() == fake.scalar_type(), "fastgan: real and fake dtypes differ");
  }
  TORCH_CHECK(p.size() == 4, "fastgan: params must be {sgn_r, t_r, sgn_f, t_f}");
  const c10::cuda::CUDAGuard guard(fake.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_pair_fwd_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    at::Tensor rf = real.defined() ? flat(real) : at::Tensor();
    at::Tensor ff = flat(fake);
    if (reduction == NONE) {
      for (int side = real.defined() ? 0 : 1; side < 2; side++) {
        at::Tensor xf = side == 0 ? rf : ff;
        at::Tensor o = at::empty_like(xf);
        const int64_t n = xf.numel();
        if (n) {
          pair_terms_kernel<scalar_t><<<elementwise_blocks(n), kThreads, 0, stream>>>(
              xf.data_ptr<scalar_t>(), o.data_ptr<scalar_t>(), n, static_cast<int>(kind), p[2 * side], p[2 * side + 1]);
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        }
        out.push_back(o.view((side == 0 ? real : fake).sizes()));
      }
      return;
    }
    const int64_t nr = rf.defined() ? rf.numel() : 0, nf = ff.numel();
    Grid gr = reduce_grid(nr), gf = reduce_grid(nf);
    at::Tensor part = at::empty({gr.blocks + gf.blocks}, fake.options().dtype(acc_type(fake.scalar_type())));
    A* pr = part.data_ptr<A>();
    A* pf = pr + gr.blocks;
    if (rf.defined()) {
      pair_fwd_reduce_kernel<scalar_t><<<gr.blocks, kThreads, 0, stream>>>(rf.data_ptr<scalar_t>(), nr,
                                                                          static_cast<int>(kind), p[0], p[1], pr, gr.per_block);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    pair_fwd_reduce_kernel<scalar_t><<<gf.blocks, kThreads, 0, stream>>>(ff.data_ptr<scalar_t>(), nf,
                                                                        static_cast<int>(kind), p[2], p[3], pf, gf.per_block);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const bool empty_mean = reduction == MEAN && (nf == 0 || (rf.defined() && nr == 0));
    at::Tensor o = at::empty({}, fake.options());
    pair_finish_kernel<scalar_t><<<1, kThreads, 0, stream>>>(
        pr, rf.defined() ? gr.blocks : 0, pf, gf.blocks, mean_weight(reduction, nr), mean_weight(reduction, nf),
        empty_mean ? std::numeric_limits<double>::quiet_NaN() : 0.0, o.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    out.push_back(o);
  });
  return out;
}

std::vector<at::Tensor> pair_bwd_cuda(const c10::optional<at::Tensor>& real_opt, const at::Tensor& fake, int64_t kind,
                                      at::ArrayRef<double> p, int64_t reduction, at::TensorList grads) {
  check_cuda(fake, "fake");
  at::Tensor real = real_opt.has_value() ? *real_opt : at::Tensor();
  const c10::cuda::CUDAGuard guard(fake.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_pair_bwd_cuda", [&] {
    const bool has_real = real.defined();
    for (int side = has_real ? 0 : 1; side < 2; side++) {
      const at::Tensor& xin = side == 0 ? real : fake;
      at::Tensor xf = flat(xin);
      at::Tensor g = at::empty_like(xf);
      const int64_t n = xf.numel();
      const bool ew = reduction == NONE;
      at::Tensor up = ew ? flat(grads[has_real ? side : 0].to(xin.scalar_type()))
                         : grads[0].to(xin.scalar_type()).contiguous();
      if (n) {
        pair_bwd_kernel<scalar_t><<<elementwise_blocks(n), kThreads, 0, stream>>>(
            xf.data_ptr<scalar_t>(), up.data_ptr<scalar_t>(), ew, mean_weight(reduction, n), g.data_ptr<scalar_t>(), n,
            static_cast<int>(kind), p[2 * side], p[2 * side + 1]);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      out.push_back(g.view(xin.sizes()));
    }
    if (!has_real) out.insert(out.begin(), at::empty({0}, fake.options()));
  });
  return out;
}

// ---------------------------------------------------------------- pair losses over lists
// One op over all the discriminators' tensors, by launches of the kernels above: one
// reduction launch per tensor into one buffer of block partials, one finishing launch per
// discriminator (writing its entry of the N losses), no host sync; the backward one
// launch per tensor that needs a gradient.  (Not a multi-tensor kernel: 3N launches
// forward, up to 2N backward; the same partials and order as pair_fwd_cuda per member.)

std::vector<at::Tensor> cuda_list_inputs(at::TensorList reals, at::TensorList fakes, at::ArrayRef<double> p) {
  TORCH_CHECK(!fakes.empty(), "fastgan: pair_list needs at least one fake tensor");
  TORCH_CHECK(reals.empty() || reals.size() == fakes.size(),
              "fastgan: pair_list needs no reals or one real per fake, got ", reals.size(), " and ", fakes.size());
  TORCH_CHECK(p.size() == 4, "fastgan: params must be {sgn_r, t_r, sgn_f, t_f}");
  std::vector<at::Tensor> xs;
  for (at::TensorList side : {reals, fakes}) {
    for (const auto& x : side) {
      check_cuda(x, "a pair_list tensor");
      TORCH_CHECK(x.device() == fakes[0].device(), "fastgan: pair_list tensors are on different devices");
      TORCH_CHECK(x.scalar_type() == fakes[0].scalar_type(), "fastgan: pair_list tensors differ in dtype");
      xs.push_back(flat(x));
    }
  }
  return xs;
}

at::Tensor pair_list_fwd_cuda(at::TensorList reals, at::TensorList fakes, int64_t kind, at::ArrayRef<double> p,
                              int64_t reduction) {
  TORCH_CHECK(reduction == MEAN || reduction == SUM, "fastgan: pair_list reduces (mean or sum)");
  const c10::cuda::CUDAGuard guard(fakes[0].device());
  const std::vector<at::Tensor> xs = cuda_list_inputs(reals, fakes, p);
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t nr = static_cast<int64_t>(reals.size()), N = static_cast<int64_t>(fakes.size());
  std::vector<Grid> grids;
  std::vector<int64_t> offset;
  int64_t blocks = 0;
  for (const auto& x : xs) {
    grids.push_back(reduce_grid(x.numel()));
    offset.push_back(blocks);
    blocks += grids.back().blocks;
  }
  at::Tensor out = at::empty({N}, fakes[0].options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fakes[0].scalar_type(), "fastgan_pair_list_fwd_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    at::Tensor part = at::empty({blocks}, fakes[0].options().dtype(acc_type(fakes[0].scalar_type())));
    A* pp = part.data_ptr<A>();
    for (size_t k = 0; k < xs.size(); k++) {
      const int side = static_cast<int64_t>(k) < nr ? 0 : 1;
      pair_fwd_reduce_kernel<scalar_t><<<grids[k].blocks, kThreads, 0, stream>>>(
          xs[k].data_ptr<scalar_t>(), xs[k].numel(), static_cast<int>(kind), p[2 * side], p[2 * side + 1],
          pp + offset[k], grids[k].per_block);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    for (int64_t d = 0; d < N; d++) {
      const int64_t f = nr + d;
      const int64_t n_r = nr ? xs[d].numel() : 0, n_f = xs[f].numel();
      const bool empty_mean = reduction == MEAN && (n_f == 0 || (nr && n_r == 0));
      pair_finish_kernel<scalar_t><<<1, kThreads, 0, stream>>>(
          pp + (nr ? offset[d] : 0), nr ? grids[d].blocks : 0, pp + offset[f], grids[f].blocks,
          mean_weight(reduction, n_r), mean_weight(reduction, n_f),
          empty_mean ? std::numeric_limits<double>::quiet_NaN() : 0.0, out.data_ptr<scalar_t>() + d);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return out;
}

std::vector<at::Tensor> pair_list_bwd_cuda(at::TensorList reals, at::TensorList fakes, int64_t kind,
                                           at::ArrayRef<double> p, int64_t reduction, const at::Tensor& up,
                                           const c10::optional<c10::List<bool>>& needs) {
  TORCH_CHECK(reduction == MEAN || reduction == SUM, "fastgan: pair_list reduces (mean or sum)");
  const c10::cuda::CUDAGuard guard(fakes[0].device());
  const std::vector<at::Tensor> xs = cuda_list_inputs(reals, fakes, p);
  TORCH_CHECK(up.numel() == static_cast<int64_t>(fakes.size()) && up.device() == fakes[0].device(),
              "fastgan: pair_list_bwd needs one upstream gradient per discriminator, on the tensors' device");
  TORCH_CHECK(!needs.has_value() || needs->size() == xs.size(), "fastgan: pair_list_bwd needs one flag per tensor");
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t nr = static_cast<int64_t>(reals.size());
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fakes[0].scalar_type(), "fastgan_pair_list_bwd_cuda", [&] {
    const at::Tensor u = up.to(fakes[0].scalar_type()).contiguous();
    for (size_t k = 0; k < xs.size(); k++) {
      const at::Tensor& xin = static_cast<int64_t>(k) < nr ? reals[k] : fakes[k - nr];
      if (needs.has_value() && !needs->get(k)) {
        out.push_back(at::empty({0}, xin.options()));  // not needed: an empty placeholder
        continue;
      }
      const int side = static_cast<int64_t>(k) < nr ? 0 : 1;
      const int64_t d = side == 0 ? static_cast<int64_t>(k) : static_cast<int64_t>(k) - nr;
      const int64_t n = xs[k].numel();
      at::Tensor g = at::empty_like(xs[k]);
      if (n) {
        pair_bwd_kernel<scalar_t><<<elementwise_blocks(n), kThreads, 0, stream>>>(
            xs[k].data_ptr<scalar_t>(), u.data_ptr<scalar_t>() + d, false, mean_weight(reduction, n),
            g.data_ptr<scalar_t>(), n, static_cast<int>(kind), p[2 * side], p[2 * side + 1]);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      out.push_back(g.view(xin.sizes()));
    }
  });
  return out;
}

// ---------------------------------------------------------------- bce drop-in family

// x, the upstream gradient and the outputs in the input's dtype; target, weight and
// pos_weight in the accumulation dtype A
// elementwise.h's bce_value / bce_deriv for the weights present (a null pointer: absent;
// the same branch for every thread)
template <typename A, bool DERIV>
__device__ __forceinline__ A bce_elem(A s, A t, const A* w, const A* pw, int64_t i) {
  if (w && pw) return DERIV ? elem::bce_deriv<true, true>(s, t, w[i], pw[i]) : elem::bce_value<true, true>(s, t, w[i], pw[i]);
  if (w) return DERIV ? elem::bce_deriv<true, false>(s, t, w[i], A(0)) : elem::bce_value<true, false>(s, t, w[i], A(0));
  if (pw) return DERIV ? elem::bce_deriv<false, true>(s, t, A(0), pw[i]) : elem::bce_value<false, true>(s, t, A(0), pw[i]);
  return DERIV ? elem::bce_deriv<false, false>(s, t, A(0), A(0)) : elem::bce_value<false, false>(s, t, A(0), A(0));
}

template <typename scalar_t, typename A = typename Acc<scalar_t>::type>
__device__ __forceinline__ A bce_value(const scalar_t* x, const A* t, const A* w, const A* pw, int64_t i) {
  return bce_elem<A, false>(static_cast<A>(x[i]), t[i], w, pw, i);
}

template <typename scalar_t, typename A = typename Acc<scalar_t>::type>
__global__ void bce_reduce_kernel(const scalar_t* x, const A* t, const A* w, const A* pw, int64_t n, A* partial,
                                  int64_t per_block) {
  const int64_t begin = int64_t(blockIdx.x) * per_block;
  const int64_t end = min(n, begin + per_block);
  A acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) acc += bce_value(x, t, w, pw, i);
  A s = block_sum<A>(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <typename scalar_t, typename A = typename Acc<scalar_t>::type>
__global__ void bce_terms_kernel(const scalar_t* x, const A* t, const A* w, const A* pw, scalar_t* out, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads)
    out[i] = static_cast<scalar_t>(bce_value(x, t, w, pw, i));
}

template <typename scalar_t, typename A = typename Acc<scalar_t>::type>
__global__ void bce_bwd_kernel(const scalar_t* x, const A* t, const A* w, const A* pw, const scalar_t* up,
                               bool elementwise, double wmean, scalar_t* g, int64_t n) {
  const A scalar_up = elementwise ? A(0) : static_cast<A>(up[0]) * static_cast<A>(wmean);
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads) {
    const A d = bce_elem<A, true>(static_cast<A>(x[i]), t[i], w, pw, i);
    g[i] = static_cast<scalar_t>((elementwise ? static_cast<A>(up[i]) : scalar_up) * d);
  }
}

at::Tensor bce_fwd_cuda(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w_opt,
                        const c10::optional<at::Tensor>& pw_opt, int64_t reduction) {
  check_cuda(x, "input");
  check_cuda(t, "target");
  const c10::cuda::CUDAGuard guard(x.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor xf = flat(x), tf = acc_flat(t, x), wf = expand_flat(w_opt, x), pf = expand_flat(pw_opt, x);
  const int64_t n = xf.numel();
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastgan_bce_fwd_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    const A* tp = tf.data_ptr<A>();
    const A* wp = wf.defined() ? wf.data_ptr<A>() : nullptr;
    const A* pp = pf.defined() ? pf.data_ptr<A>() : nullptr;
    if (reduction == NONE) {
      out = at::empty_like(xf);
      if (n) {
        bce_terms_kernel<scalar_t><<<elementwise_blocks(n), kThreads, 0, stream>>>(
            xf.data_ptr<scalar_t>(), tp, wp, pp, out.data_ptr<scalar_t>(), n);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      out = out.view(x.sizes());
      return;
    }
    Grid gr = reduce_grid(n);
    at::Tensor part = at::empty({gr.blocks}, x.options().dtype(acc_type(x.scalar_type())));
    bce_reduce_kernel<scalar_t><<<gr.blocks, kThreads, 0, stream>>>(xf.data_ptr<scalar_t>(), tp, wp, pp, n,
                                                                    part.data_ptr<A>(), gr.per_block);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    out = at::empty({}, x.options());
    pair_finish_kernel<scalar_t><<<1, kThreads, 0, stream>>>(
        part.data_ptr<A>(), 0, part.data_ptr<A>(), gr.blocks, 1.0, mean_weight(reduction, n),
        (reduction == MEAN && n == 0) ? std::numeric_limits<double>::quiet_NaN() : 0.0, out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor bce_bwd_cuda(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w_opt,
                        const c10::optional<at::Tensor>& pw_opt, int64_t reduction, const at::Tensor& up) {
  check_cuda(x, "input");
  const c10::cuda::CUDAGuard guard(x.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor xf = flat(x), tf = acc_flat(t, x), wf = expand_flat(w_opt, x), pf = expand_flat(pw_opt, x);
  const int64_t n = xf.numel();
  at::Tensor g = at::empty_like(xf);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastgan_bce_bwd_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    const bool ew = reduction == NONE;
    at::Tensor u = ew ? flat(up.to(x.scalar_type())) : up.to(x.scalar_type()).contiguous();
    if (n) {
      bce_bwd_kernel<scalar_t><<<elementwise_blocks(n), kThreads, 0, stream>>>(
          xf.data_ptr<scalar_t>(), tf.data_ptr<A>(), wf.defined() ? wf.data_ptr<A>() : nullptr,
          pf.defined() ? pf.data_ptr<A>() : nullptr, u.data_ptr<scalar_t>(), ew, mean_weight(reduction, n),
          g.data_ptr<scalar_t>(), n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return g.view(x.sizes());
}

// ---------------------------------------------------------------- gradient-norm penalty

// grid (row, split): each block sums the squares of one span of one row
template <typename scalar_t>
__global__ void sqnorm_partial_kernel(const scalar_t* g, int64_t D, int splits, int64_t per_split,
                                      typename Acc<scalar_t>::type* partial) {
  using A = typename Acc<scalar_t>::type;
  const int64_t row = blockIdx.x;
  const int split = blockIdx.y;
  const int64_t begin = int64_t(split) * per_split, end = min(D, begin + per_split);
  const scalar_t* r = g + row * D;
  A acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const A v = static_cast<A>(r[i]);
    acc += v * v;
  }
  A s = block_sum<A>(acc);
  if (threadIdx.x == 0) partial[row * splits + split] = s;
}

// one block: finish the rows (sq), the terms, and the reduction, in a fixed order
template <typename scalar_t>
__global__ void penalty_finish_kernel(const typename Acc<scalar_t>::type* partial, int64_t B, int splits,
                                      double center, bool one_sided, int reduction, double w, double bias,
                                      typename Acc<scalar_t>::type* sq, scalar_t* out) {
  using A = typename Acc<scalar_t>::type;
  A acc = 0;
  for (int64_t r = threadIdx.x; r < B; r += kThreads) {
    A q = 0;
    for (int s = 0; s < splits; s++) q += partial[r * splits + s];
    sq[r] = q;
    const A v = elem::penalty_term<A>(q, center, one_sided);
    if (reduction == NONE) out[r] = static_cast<scalar_t>(v);
    else acc += v;
  }
  if (reduction != NONE) {
    A total = block_sum<A>(acc);
    if (threadIdx.x == 0) out[0] = static_cast<scalar_t>(static_cast<A>(w) * total + static_cast<A>(bias));
  }
}

template <typename scalar_t>
__global__ void penalty_bwd_kernel(const scalar_t* g, const typename Acc<scalar_t>::type* sq, const scalar_t* up,
                                   bool elementwise, double w, double center, bool one_sided, scalar_t* dg,
                                   int64_t B, int64_t D) {
  using A = typename Acc<scalar_t>::type;
  const int64_t total = B * D;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < total; i += int64_t(gridDim.x) * kThreads) {
    const int64_t r = i / D;
    const A k = elem::penalty_coef<A>(sq[r], center, one_sided);
    const A u = elementwise ? static_cast<A>(up[r]) : static_cast<A>(up[0]) * static_cast<A>(w);
    dg[i] = static_cast<scalar_t>(u * k * static_cast<A>(g[i]));
  }
}

std::vector<at::Tensor> penalty_fwd_cuda(const at::Tensor& grads, double center, bool one_sided, int64_t reduction) {
  check_cuda(grads, "grads");
  TORCH_CHECK(grads.dim() >= 1, "fastgan: grads must have a batch dimension");
  const c10::cuda::CUDAGuard guard(grads.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor gf = grads.contiguous();
  const int64_t B = grads.size(0);
  const int64_t D = B ? gf.numel() / B : 0;
  // split long rows so that small batches still fill the GPU; the split depends on the shape only
  const int64_t tile = int64_t(kThreads) * kItems;
  const int64_t col_tiles = std::max<int64_t>(1, (D + tile - 1) / tile);
  const int64_t want = std::max<int64_t>(1, std::min<int64_t>(col_tiles, (kMaxBlocks + std::max<int64_t>(B, 1) - 1) /
                                                                             std::max<int64_t>(B, 1)));
  const int64_t per_split = ((col_tiles + want - 1) / want) * tile;
  const int splits = static_cast<int>(std::max<int64_t>(1, (D + per_split - 1) / per_split));
  at::Tensor sq = at::empty({B}, grads.options().dtype(acc_type(grads.scalar_type())));
  at::Tensor out = reduction == NONE ? at::empty({B}, grads.options()) : at::empty({}, grads.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "fastgan_penalty_fwd_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    at::Tensor part = at::zeros({std::max<int64_t>(B, 1) * splits}, sq.options());
    if (B && D) {
      TORCH_CHECK(B <= 2147483647LL, "fastgan: batch too large");
      sqnorm_partial_kernel<scalar_t><<<dim3(static_cast<unsigned>(B), splits), kThreads, 0, stream>>>(
          gf.data_ptr<scalar_t>(), D, splits, per_split, part.data_ptr<A>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    penalty_finish_kernel<scalar_t><<<1, kThreads, 0, stream>>>(
        part.data_ptr<A>(), B, splits, center, one_sided, static_cast<int>(reduction), mean_weight(reduction, B),
        (reduction == MEAN && B == 0) ? std::numeric_limits<double>::quiet_NaN() : 0.0, sq.data_ptr<A>(),
        out.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, sq};
}

at::Tensor penalty_bwd_cuda(const at::Tensor& grads, const at::Tensor& sq, double center, bool one_sided,
                            int64_t reduction, const at::Tensor& up) {
  check_cuda(grads, "grads");
  const c10::cuda::CUDAGuard guard(grads.device());
  auto stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor gf = grads.contiguous();
  const int64_t B = grads.size(0);
  const int64_t D = B ? gf.numel() / B : 0;
  at::Tensor dg = at::empty_like(gf);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "fastgan_penalty_bwd_cuda", [&] {
    using A = typename Acc<scalar_t>::type;
    at::Tensor u = up.to(grads.scalar_type()).contiguous();
    at::Tensor sqc = sq.contiguous();
    if (B * D) {
      penalty_bwd_kernel<scalar_t><<<elementwise_blocks(B * D), kThreads, 0, stream>>>(
          gf.data_ptr<scalar_t>(), sqc.data_ptr<A>(), u.data_ptr<scalar_t>(), reduction == NONE,
          mean_weight(reduction, B), center, one_sided, dg.data_ptr<scalar_t>(), B, D);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return dg.view(grads.sizes());
}

// feature matching on CUDA: ATen ops per map for now (correct, not fused: one reduction
// and one elementwise pass per map); the fused multi-tensor kernel is future work
at::Tensor fm_fwd_cuda(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales) {
  TORCH_CHECK(reals.size() == fakes.size() && scales.size() == fakes.size(),
              "fastgan: fm needs one real map, one fake map and one scale per index");
  TORCH_CHECK(!fakes.empty(), "fastgan: fm needs at least one map");
  at::Tensor total;
  for (size_t m = 0; m < fakes.size(); m++) {
    check_cuda(fakes[m], "fake feature map");
    at::Tensor d = fakes[m].to(acc_type(fakes[m].scalar_type())) - reals[m].to(acc_type(fakes[m].scalar_type()));
    at::Tensor s = (p == 1 ? d.abs().sum() : (d * d).sum()).to(at::kDouble) * scales[m];
    total = total.defined() ? total + s : s;
  }
  at::ScalarType dt = fakes[0].scalar_type();
  for (const auto& f : fakes) dt = at::promoteTypes(dt, f.scalar_type());
  return total.to(dt);
}

std::vector<at::Tensor> fm_bwd_cuda(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales,
                                    const at::Tensor& up) {
  std::vector<at::Tensor> out;
  for (size_t m = 0; m < fakes.size(); m++) {
    const auto acc = acc_type(fakes[m].scalar_type());
    at::Tensor d = fakes[m].to(acc) - reals[m].to(acc);
    at::Tensor c = up.to(acc) * (scales[m] * (p == 1 ? 1.0 : 2.0));
    out.push_back(((p == 1 ? d.sign() : d) * c).to(fakes[m].scalar_type()));
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastgan_native, CUDA, m) {
  m.impl("pair_fwd", &pair_fwd_cuda);
  m.impl("pair_bwd", &pair_bwd_cuda);
  m.impl("bce_fwd", &bce_fwd_cuda);
  m.impl("bce_bwd", &bce_bwd_cuda);
  m.impl("penalty_fwd", &penalty_fwd_cuda);
  m.impl("penalty_bwd", &penalty_bwd_cuda);
  m.impl("fm_fwd", &fm_fwd_cuda);
  m.impl("fm_bwd", &fm_bwd_cuda);
  m.impl("pair_list_fwd", &pair_list_fwd_cuda);
  m.impl("pair_list_bwd", &pair_list_bwd_cuda);
}

}  // namespace fastgan
