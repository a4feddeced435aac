// Phase 2 of our sparse GEMM (docs/cutlass_kernel.md): a mainloop that reads the un-lifted
// quantized activations X [M, K] and builds the lifted operand (DESIGN.md §4) in shared memory,
// so the γ·K-wide lifted copy never exists in global memory.
//
// It extends the mainloop CUTLASS's builder makes for the sparse GEMM (INT8 or FP8) and keeps
// its weight path (TMA of the compressed weights and their metadata, the same pipeline). What
// changes is B:
//   - the producer's TMA loads a 128-byte-wide window of X per K tile into the stage's B slot,
//     starting at the first raw column the tile's lifted columns read, rounded down to a
//     16-byte multiple (a box starting off that grid raised an illegal instruction in the TMA
//     load on the H100); columns past K read as zero, as the lift's padding does;
//   - the two consumer warpgroups write the lifted tile from it into one of two lifted buffers,
//     4 bytes (one window) per 32-bit shared store, while the tensor cores work on the other
//     buffer; then a proxy fence (the wgmma reads shared memory through the async proxy) and a
//     barrier of the 256 consumer threads;
//   - the sparse wgmma reads B from the lifted buffer.
// TMA cannot lift by itself: windows start every 2 bytes and TMA strides are 16-byte
// multiples. Only the persistent data-parallel scheduler is supported: the lift needs each
// K tile's absolute index (stream-K starts tiles in the middle of K) and both consumer
// warpgroups in every tile (the barrier).
#pragma once

#include <cutlass/arch/barrier.h>
#include <cutlass/gemm/collective/fp8_accumulation.hpp>

#include <cute/tensor.hpp>
#include <type_traits>

#include "lift_map.hpp"

namespace slidesparse::cutlass_lift {

template <class Base>
struct LiftingSparseMainloop : Base {
  using typename Base::ArchTag;
  using typename Base::DispatchPolicy;
  using typename Base::ElementAccumulator;
  using typename Base::ElementBMma;
  using typename Base::ElementEMma;
  using typename Base::MainloopPipeline;
  using typename Base::PipelineState;
  using typename Base::SmemLayoutA;
  using typename Base::SmemLayoutAtomB;
  using typename Base::SmemLayoutB;
  using typename Base::SmemLayoutE;
  using typename Base::TileShape;
  using typename Base::TiledMma;
  using ClusterShape = typename DispatchPolicy::ClusterShape;

  static constexpr int kTileN = cute::size<1>(TileShape{});  // tokens per tile
  static constexpr int kTileK = cute::size<2>(TileShape{});  // lifted columns per K tile
  static constexpr int kConsumerThreads = cute::size(TiledMma{});
  static constexpr int kConsumerWarps = kConsumerThreads / 32;
  // One lane per 4-byte window of a lifted row: 32 windows of 8-bit values.
  static_assert(kTileK == 128 && sizeof(ElementBMma) == 1, "the lift assumes a 128-byte K tile");
  static_assert(!Base::is_B_mn_major, "the activations must be K-major");
  static_assert(kTileN % kConsumerWarps == 0, "whole rows per consumer warp");
  // FP8 promotes the tensor cores' partial sums into fp32 accumulators every few MMAs.
  static constexpr bool kPromotes =
      std::is_same_v<DispatchPolicy,
                     cutlass::gemm::MainloopSm90TmaGmmaWarpSpecializedSparseFP8<
                         DispatchPolicy::Stages, ClusterShape,
                         typename DispatchPolicy::Schedule>>;

  // Two lifted tiles: one the tensor cores read, one the consumers fill.
  using SmemLayoutLifted = decltype(cute::tile_to_shape(
      SmemLayoutAtomB{}, cute::make_shape(cute::Int<kTileN>{}, cute::Int<kTileK>{}, cute::_2{}),
      cute::Step<cute::_1, cute::_2, cute::_3>{}));
  static constexpr int kLiftedBytes = cute::cosize_v<SmemLayoutLifted> * sizeof(ElementBMma);

  struct SharedStorage {
    struct TensorStorage {
      alignas(128) cute::ArrayEngine<typename Base::ElementAMma, cute::cosize_v<SmemLayoutA>> smem_A;
      // The un-lifted X windows, one per pipeline stage (the TMA's B slot).
      alignas(128) cute::ArrayEngine<ElementBMma, cute::cosize_v<SmemLayoutB>> smem_B;
      alignas(128) cute::ArrayEngine<ElementBMma, cute::cosize_v<SmemLayoutLifted>> smem_lifted;
      alignas(128) cute::ArrayEngine<ElementEMma, cute::cosize_v<SmemLayoutE>> smem_E;
    } tensors;
    typename MainloopPipeline::SharedStorage pipeline;
  };
  using TensorStorage = typename SharedStorage::TensorStorage;
  using PipelineStorage = typename MainloopPipeline::SharedStorage;

  struct Arguments : Base::Arguments {
    int raw_k = 0;  // columns of X, the TMA view's extent (ptr_B, dB describe X [M, raw_k])
    LiftMap lift;
  };

  struct Params : Base::Params {
    int tokens = 0;
    int raw_k = 0;
    LiftMap lift;
  };

  // The weights' TMA from the GEMM's (lifted) shape, X's from its own [tokens, raw_k]: the
  // base builds B's descriptor from the problem's K, so it is handed raw_k there. The raw tile
  // has B's shape (tokens × 128 bytes), so the transaction bytes per stage do not change.
  template <class ProblemShape>
  static Params to_underlying_arguments(ProblemShape const& problem, Arguments const& args,
                                        void* workspace) {
    auto [m, n, k, l] = cute::append<4>(problem, 1);
    Params params;
    static_cast<typename Base::Params&>(params) = Base::to_underlying_arguments(
        cute::make_shape(m, n, args.raw_k, l), static_cast<typename Base::Arguments const&>(args),
        workspace);
    params.tokens = n;
    params.raw_k = args.raw_k;
    params.lift = args.lift;
    return params;
  }

  // A K tile's windows must stay inside the 128-byte raw box.
  static bool lift_fits(LiftMap lift) { return lift.fits(kTileK, kTileK); }

  template <class ProblemShape>
  static bool can_implement(ProblemShape const& problem, Arguments const& args) {
    // TMA needs X's rows at a 16-byte stride (K-major: the token stride).
    return Base::can_implement(problem, args) && args.raw_k > 0 &&
           cute::get<0>(args.dB) % 16 == 0 && lift_fits(args.lift);
  }

  // The kernel takes the tile counts from A's and B's tiled views (get<0>, get<1>); the
  // producer reads X through the untiled view (the 4th), at each K tile's own raw offset.
  template <class ProblemShape_MNKL>
  CUTLASS_DEVICE auto load_init(ProblemShape_MNKL const& problem, Params const& params) const {
    auto [gA_mkl, gB_nkl, gE_mkl] = Base::load_init(problem, params);
    auto l = cute::get<3>(problem);
    cute::Tensor mX = params.tma_load_b.get_tma_tensor(cute::make_shape(params.tokens, params.raw_k, l));
    return cute::make_tuple(gA_mkl, gB_nkl, gE_mkl, mX);
  }

  template <class TensorA, class TensorB, class TensorE, class TensorX, class KTileIterator,
            class BlockCoord>
  CUTLASS_DEVICE void load(Params const& params, MainloopPipeline pipeline,
                           PipelineState smem_pipe_write,
                           cute::tuple<TensorA, TensorB, TensorE, TensorX> const& load_inputs,
                           BlockCoord const& blk_coord, KTileIterator k_tile_iter, int k_tile_count,
                           int /*thread_idx*/, uint32_t block_rank_in_cluster,
                           TensorStorage& shared_tensors) {
    using namespace cute;
    if (!elect_one_sync()) return;
    Tensor sA = make_tensor(make_smem_ptr(shared_tensors.smem_A.begin()), SmemLayoutA{});
    Tensor sE = make_tensor(make_smem_ptr(shared_tensors.smem_E.begin()), SmemLayoutE{});
    Tensor sX = make_tensor(make_smem_ptr(shared_tensors.smem_B.begin()), SmemLayoutB{});
    auto const& gA_mkl = get<0>(load_inputs);
    auto const& gE_mkl = get<2>(load_inputs);
    auto const& mX = get<3>(load_inputs);

    // Multicast as the base mainloop: the weights along the cluster's token dimension, X along
    // its weight dimension.
    Layout cta_layout = make_layout(ClusterShape{});
    auto cta_coord = cta_layout.get_flat_coord(block_rank_in_cluster);
    const uint16_t mcast_a = create_tma_multicast_mask<1>(cta_layout, cta_coord);
    const uint16_t mcast_x = create_tma_multicast_mask<0>(cta_layout, cta_coord);
    auto tma_a = params.tma_load_a.get_slice(get<1>(cta_coord));
    auto tma_e = params.tma_load_e.get_slice(get<1>(cta_coord));
    auto tma_x = params.tma_load_b.get_slice(get<0>(cta_coord));

    auto [m_coord, n_coord, k_coord, l_coord] = blk_coord;
    Tensor tAgA = tma_a.partition_S(gA_mkl(_, _, m_coord, _, l_coord));
    Tensor tAsA = tma_a.partition_D(sA);
    Tensor tEgE = tma_e.partition_S(gE_mkl(_, _, m_coord, _, l_coord));
    Tensor tEsE = tma_e.partition_D(sE);
    Tensor tXsX = tma_x.partition_D(sX);

    for (; k_tile_count > 0; --k_tile_count, ++k_tile_iter, ++smem_pipe_write) {
      pipeline.producer_acquire(smem_pipe_write);
      auto* barrier = pipeline.producer_get_barrier(smem_pipe_write);
      const int stage = smem_pipe_write.index();
      const int tile = *k_tile_iter;
      // This K tile's window of X: 128 columns from the 16-column boundary at or before the
      // first raw column it reads.
      Tensor mX_tile = domain_offset(make_coord(0, params.lift.raw_start(tile, kTileK), 0), mX);
      Tensor gX = local_tile(mX_tile, TileShape{}, make_coord(_, n_coord, 0),
                             Step<Underscore, _1, _1>{})(_, _, l_coord);
      copy(params.tma_load_a.with(*barrier, mcast_a), tAgA(_, _, _, tile), tAsA(_, _, _, stage));
      copy(params.tma_load_e.with(*barrier, mcast_a), tEgE(_, _, _, tile), tEsE(_, _, _, stage));
      copy(params.tma_load_b.with(*barrier, mcast_x), tma_x.partition_S(gX), tXsX(_, _, _, stage));
    }
  }

  template <class FrgTensorC>
  CUTLASS_DEVICE void mma(MainloopPipeline pipeline, PipelineState smem_pipe_read,
                          FrgTensorC& accum, int k_tile_count, int thread_idx,
                          TensorStorage& shared_tensors, Params const& params) {
    using namespace cute;
    Tensor sA = make_tensor(make_smem_ptr(shared_tensors.smem_A.begin()), SmemLayoutA{});
    Tensor sX = make_tensor(make_smem_ptr(shared_tensors.smem_B.begin()), SmemLayoutB{});
    Tensor sL = make_tensor(make_smem_ptr(shared_tensors.smem_lifted.begin()), SmemLayoutLifted{});
    Tensor sE = as_position_independent_swizzle_tensor(
        make_tensor(make_smem_ptr(shared_tensors.smem_E.begin()), SmemLayoutE{}));

    // Each warpgroup's slice of the MMA, as the base mainloop.
    const int warp_group = __shfl_sync(0xffffffff, thread_idx / cutlass::NumThreadsPerWarpGroup, 0);
    TiledMma tiled_mma;
    auto thread_mma = tiled_mma.get_slice(
        make_layout(Int<kConsumerThreads / cutlass::NumThreadsPerWarpGroup>{},
                    Int<cutlass::NumThreadsPerWarpGroup>{})(
            warp_group));
    Tensor tCrA = thread_mma.make_fragment_A(thread_mma.partition_A(sA));  // (MMA,M,K,PIPE)
    Tensor tCrB = thread_mma.make_fragment_B(thread_mma.partition_B(sL));  // (MMA,N,K,2)

    // The metadata goes through registers.
    auto e_copy = make_tiled_copy_impl(Copy_Atom<AutoVectorizingCopy, uint32_t>{},
                                       metadata_thread_layout(tiled_mma),
                                       make_shape(tile_size<0>(tiled_mma), tile_size<2>(tiled_mma)));
    auto e_thread_copy = e_copy.get_thread_slice(thread_idx);
    Tensor tCrE = make_fragment_like<ElementEMma>(partition_metadata(thread_mma, sE(_, _, Int<0>{})));
    Tensor tEsE = e_thread_copy.partition_S(sE);
    Tensor tErE = e_thread_copy.retile_D(tCrE);

    const int lane = thread_idx % 32, first_row = thread_idx / 32;
    // Writes the lifted K tile `tile` into lifted buffer `buffer` from the stage's X window.
    auto lift = [&](int stage, int buffer, int tile) {
      const int offset = params.lift.window_offset(tile, kTileK, lane);
      const int aligned = offset & ~3;
      const bool straddles = (offset & 3) != 0;  // a window starts every 2 bytes
      CUTLASS_PRAGMA_UNROLL
      for (int row = first_row; row < kTileN; row += kConsumerWarps) {
        const uint32_t low = *reinterpret_cast<uint32_t const*>(&sX(row, aligned, stage));
        uint32_t window = low;
        if (straddles) {
          const uint32_t high = *reinterpret_cast<uint32_t const*>(&sX(row, aligned + 4, stage));
          window = __byte_perm(low, high, 0x5432);  // bytes 2, 3 of low, then 0, 1 of high
        }
        *reinterpret_cast<uint32_t*>(&sL(row, 4 * lane, buffer)) = window;
      }
      cutlass::arch::fence_view_async_shared();  // visible to the wgmma's async proxy
    };
    auto consumers_sync = [] { cutlass::arch::NamedBarrier::sync(kConsumerThreads, 0); };

    auto wait = [&](PipelineState state) {
      pipeline.consumer_wait(state, pipeline.consumer_try_wait(state));
    };
    if (k_tile_count <= 0) return;
    wait(smem_pipe_read);
    lift(smem_pipe_read.index(), 0, 0);
    consumers_sync();

    PipelineState smem_pipe_release = smem_pipe_read;
    tiled_mma.accumulate_ = GMMA::ScaleOut::Zero;
    auto run = [&](auto& accumulators, auto&& before_mma, auto&& after_wait) {
      warpgroup_fence_operand(accumulators);
      for (int tile = 0; tile < k_tile_count; ++tile) {
        const int stage = smem_pipe_read.index(), buffer = tile & 1;
        copy(e_copy, tEsE(_, _, _, stage), tErE);
        before_mma();
        warpgroup_fence_operand(accumulators);
        warpgroup_arrive();
        CUTLASS_PRAGMA_UNROLL
        for (int k_block = 0; k_block < size<2>(tCrA); ++k_block) {
          cute::gemm(tiled_mma, make_zip_tensor(tCrA(_, _, k_block, stage), tErE(_, _, k_block)),
                     tCrB(_, _, k_block, buffer), accumulators);
          tiled_mma.accumulate_ = GMMA::ScaleOut::One;
        }
        warpgroup_commit_batch();
        ++smem_pipe_read;
        // The next tile's lift overlaps this tile's MMAs (they read the other buffer).
        if (tile + 1 < k_tile_count) {
          wait(smem_pipe_read);
          lift(smem_pipe_read.index(), buffer ^ 1, tile + 1);
        }
        warpgroup_wait<0>();
        warpgroup_fence_operand(accumulators);
        after_wait();
        pipeline.consumer_release(smem_pipe_release);
        ++smem_pipe_release;
        // Both warpgroups: the next lifted tile is complete, and this one's MMAs are done
        // (its buffer is the next one to be written).
        consumers_sync();
      }
    };
    if constexpr (kPromotes) {
      cutlass::gemm::collective::GmmaFP8Accumulation accumulation(
          accum, params.mma_promotion_interval, size<2>(tCrA));
      run(accumulation(),
          [&] {
            if (accumulation.prepare_if_needed()) tiled_mma.accumulate_ = GMMA::ScaleOut::Zero;
          },
          [&] { accumulation.promote_if_needed(); });
      accumulation.promote_residue_if_needed();
      warpgroup_fence_operand(accumulation());
    } else {
      run(accum, [] {}, [] {});
      warpgroup_fence_operand(accum);
    }
  }

 private:
  // The metadata's (thread, value) → (M, K) partition for the tiled MMA: the operand-A
  // partition of cute's TiledMMA with the atom's metadata layout in place of A's.
  template <class Atom, class AtomLayout, class Permutation, class ETensor>
  CUTE_HOST_DEVICE static constexpr auto metadata_fragments(
      cute::TiledMMA<Atom, AtomLayout, Permutation> const& mma, ETensor&& e) {
    using namespace cute;
    using Mma = TiledMMA<Atom, AtomLayout, Permutation>;
    using AtomShape = typename Mma::AtomShape_MNK;
    auto permuted = logical_divide(e, make_tile(get<0>(Permutation{}), get<2>(Permutation{})));
    auto by_atom = zipped_divide(permuted, make_tile(make_layout(size<0>(AtomShape{})),
                                                     make_layout(size<2>(AtomShape{}))));
    auto by_value = by_atom.compose(typename Mma::Atom::Traits::ELayout{}, _);
    return zipped_divide(by_value,
                         make_tile(_, make_tile(make_layout(size<1>(mma.thr_layout_vmnk_)),
                                                make_layout(size<3>(mma.thr_layout_vmnk_)))));
  }

  template <class ThrMma, class ETensor>
  CUTE_HOST_DEVICE static constexpr auto partition_metadata(ThrMma const& thr_mma, ETensor&& e) {
    using namespace cute;
    auto by_thread = make_tensor(e.data(), metadata_fragments(thr_mma, e.layout()));
    auto coord = make_coord(get<0>(thr_mma.thr_vmnk_),
                            make_coord(get<1>(thr_mma.thr_vmnk_), get<3>(thr_mma.thr_vmnk_)));
    return by_thread(coord, make_coord(_, repeat<rank<1, 1>(by_thread)>(_)));
  }

  // (thread index, value) → (M, K) of the metadata, for a tiled copy from shared memory.
  template <class Mma>
  CUTE_HOST_DEVICE static constexpr auto metadata_thread_layout(Mma const& mma) {
    using namespace cute;
    auto reference = make_layout(make_shape(tile_size<0>(mma), tile_size<2>(mma)));
    auto by_thread = metadata_fragments(mma, reference);
    // (ThrV, (ThrM, ThrK)) → (ThrV, (ThrM, ThrN, ThrK)): every N thread reads the same metadata.
    auto widen = make_tile(_, make_tile(make_layout(make_shape(size<1>(mma.thr_layout_vmnk_),
                                                               size<2>(mma.thr_layout_vmnk_)),
                                                    make_stride(Int<1>{}, Int<0>{})),
                                        _));
    return by_thread.compose(widen, _).compose(right_inverse(mma.thr_layout_vmnk_), _);
  }
};

}  // namespace slidesparse::cutlass_lift
