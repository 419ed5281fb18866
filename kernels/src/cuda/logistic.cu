// The logistic objective on the GPU, in three launches per pass and no atomics, so that every
// sum is taken in the same order on every run:
//   logistic_rows  one thread per row: score (dense dot product plus one coefficient lookup
//                  per categorical column), stable softplus and sigmoid, weighted loss and
//                  residual; per-block sums of loss and residual by a fixed tree;
//   logistic_xt_r  X^T r over chunks of rows, one partial gradient per chunk;
//   sum_parts      (reduce.cuh) one block per output: strided partial sums, then a tree.
// The categorical slots' gradient is the residuals added into their slots in row order; the
// host does that (cuda/logistic.rs), the same way the CPU kernel does.
// Accumulation is in double like the CPU kernel; inputs are the same f32 matrix.

#define ROW_THREADS 256
#define TILE 32
#define CHUNK_ROWS 1024
#define XTR_LANES 8

// rows × cols row-major x; rows × ncat row-major slot codes, column j's coefficients starting at
// beta[bases[j]]; w is read only when has_w. parts gets (loss, sum of residuals) per block.
extern "C" __global__ void logistic_rows(const float* __restrict__ x,
                                         const unsigned* __restrict__ codes,
                                         const long long* __restrict__ bases, int ncat,
                                         const float* __restrict__ y,
                                         const float* __restrict__ w, int has_w,
                                         const double* __restrict__ beta, double intercept,
                                         long long rows, int cols, double* __restrict__ residual,
                                         double* __restrict__ parts) {
    // A tile of TILE columns of this block's rows, read row-contiguously so that a warp's loads
    // coalesce; the +1 keeps the per-row reads below on distinct shared-memory banks.
    __shared__ float tile[ROW_THREADS * (TILE + 1)];
    __shared__ double s_loss[ROW_THREADS];
    __shared__ double s_res[ROW_THREADS];
    const int t = threadIdx.x;
    const long long first = (long long)blockIdx.x * ROW_THREADS;
    const long long i = first + t;
    double z = 0.0;
    for (int c0 = 0; c0 < cols; c0 += TILE) {
        const int width = min(TILE, cols - c0);
        for (int k = t; k < ROW_THREADS * TILE; k += ROW_THREADS) {
            const int r = k / TILE, c = k % TILE;
            float v = 0.0f;
            if (c < width && first + r < rows) v = x[(first + r) * cols + c0 + c];
            tile[r * (TILE + 1) + c] = v;
        }
        __syncthreads();
        for (int c = 0; c < width; ++c) z += (double)tile[t * (TILE + 1) + c] * beta[c0 + c];
        __syncthreads();
    }
    double loss = 0.0, res = 0.0;
    if (i < rows) {
        for (int j = 0; j < ncat; ++j) z += beta[bases[j] + codes[i * ncat + j]];
        z += intercept;
        const double e = exp(-fabs(z));
        const double softplus = fmax(z, 0.0) + log1p(e);
        const double p = z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        const double yi = (double)y[i];
        const double s = has_w ? (double)w[i] : 1.0;
        loss = s * (softplus - yi * z);
        res = s * (p - yi);
        residual[i] = res;
    }
    s_loss[t] = loss;
    s_res[t] = res;
    __syncthreads();
    tree_sum(s_loss, ROW_THREADS, t);
    tree_sum(s_res, ROW_THREADS, t);
    if (t == 0) {
        parts[2 * blockIdx.x] = s_loss[0];
        parts[2 * blockIdx.x + 1] = s_res[0];
    }
}

// Grid (chunks, column tiles); block TILE × XTR_LANES threads. Lane l of column j sums rows
// l, l + XTR_LANES, ... of the chunk; the lanes are then added in order. parts is chunks × cols.
extern "C" __global__ void logistic_xt_r(const float* __restrict__ x,
                                         const double* __restrict__ residual, long long rows,
                                         int cols, double* __restrict__ parts) {
    __shared__ double s[XTR_LANES][TILE];
    const int cx = threadIdx.x % TILE, lane = threadIdx.x / TILE;
    const int j = blockIdx.y * TILE + cx;
    const long long start = (long long)blockIdx.x * CHUNK_ROWS;
    const long long end = min(start + CHUNK_ROWS, rows);
    double acc = 0.0;
    if (j < cols) {
        for (long long r = start + lane; r < end; r += XTR_LANES) {
            acc += residual[r] * (double)x[r * cols + j];
        }
    }
    s[lane][cx] = acc;
    __syncthreads();
    if (lane == 0 && j < cols) {
        double total = 0.0;
        for (int l = 0; l < XTR_LANES; ++l) total += s[l][cx];
        parts[(long long)blockIdx.x * cols + j] = total;
    }
}
