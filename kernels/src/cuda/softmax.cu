// The multinomial (softmax) objective on the GPU, with the binary kernel's discipline: no
// atomics, every sum in a fixed order. Per pass:
//   softmax_rows     one thread per row: the K class scores (dense dot product plus one
//                    coefficient lookup per categorical column, per class), a stable
//                    log-softmax, the weighted loss and the K residuals s·(p_c − 1[y = c]),
//                    stored row-major (rows × K); per-block loss sums by a fixed tree;
//   softmax_xt_r     X^T R over chunks of rows: one partial gradient per chunk, class and column;
//   residual_sums    the residuals' column sums (the intercepts' gradient) over the same chunks;
//   sum_parts        (reduce.cuh) one block per output: strided partial sums, then a tree.
// The categorical slots' gradient is the residuals added into their slots in row order, on the
// host, as for the binary objective. Scores are accumulated in double over the same f32 rows.

#define ROW_THREADS 256
#define TILE 32
#define CHUNK_ROWS 1024
#define XTR_LANES 8

// coef is K × width, class-major; class c's categorical column j starts at
// coef[c * width + bases[j]]. The class scores go through `residual` (this row's K slots) so
// that K is not limited by registers.
extern "C" __global__ void softmax_rows(const float* __restrict__ x,
                                        const unsigned* __restrict__ codes,
                                        const long long* __restrict__ bases, int ncat,
                                        const float* __restrict__ y,
                                        const float* __restrict__ w, int has_w,
                                        const double* __restrict__ coef,
                                        const double* __restrict__ intercept, int k,
                                        long long width, long long rows, int cols,
                                        double* __restrict__ residual,
                                        double* __restrict__ parts) {
    __shared__ double s_loss[ROW_THREADS];
    const int t = threadIdx.x;
    const long long i = (long long)blockIdx.x * ROW_THREADS + t;
    double loss = 0.0;
    if (i < rows) {
        const float* row = x + i * cols;
        double* r = residual + i * k;
        double max = 0.0;
        for (int c = 0; c < k; ++c) {
            const double* beta = coef + c * width;
            double z = 0.0;
            for (int j = 0; j < cols; ++j) z += (double)row[j] * beta[j];
            for (int j = 0; j < ncat; ++j) z += beta[bases[j] + codes[i * ncat + j]];
            z += intercept[c];
            r[c] = z;
            max = c == 0 ? z : fmax(max, z);
        }
        double sum = 0.0;
        for (int c = 0; c < k; ++c) sum += exp(r[c] - max);
        const double log_sum = log(sum);
        const int yi = (int)y[i];
        const double s = has_w ? (double)w[i] : 1.0;
        loss = s * (log_sum - (r[yi] - max));
        for (int c = 0; c < k; ++c) {
            const double p = exp((r[c] - max) - log_sum);
            r[c] = s * (p - (c == yi ? 1.0 : 0.0));
        }
    }
    s_loss[t] = loss;
    __syncthreads();
    tree_sum(s_loss, ROW_THREADS, t);
    if (t == 0) parts[blockIdx.x] = s_loss[0];
}

// Grid (chunks, column tiles, classes); block TILE × XTR_LANES threads. Lane l of column j sums
// rows l, l + XTR_LANES, ... of the chunk; the lanes are then added in order.
// parts is chunks × (K × cols), class-major within a chunk.
extern "C" __global__ void softmax_xt_r(const float* __restrict__ x,
                                        const double* __restrict__ residual, long long rows,
                                        int cols, int k, double* __restrict__ parts) {
    __shared__ double s[XTR_LANES][TILE];
    const int cx = threadIdx.x % TILE, lane = threadIdx.x / TILE;
    const int j = blockIdx.y * TILE + cx;
    const int c = blockIdx.z;
    const long long start = (long long)blockIdx.x * CHUNK_ROWS;
    const long long end = min(start + CHUNK_ROWS, rows);
    double acc = 0.0;
    if (j < cols) {
        for (long long r = start + lane; r < end; r += XTR_LANES) {
            acc += residual[r * k + c] * (double)x[r * cols + j];
        }
    }
    s[lane][cx] = acc;
    __syncthreads();
    if (lane == 0 && j < cols) {
        double total = 0.0;
        for (int l = 0; l < XTR_LANES; ++l) total += s[l][cx];
        parts[((long long)blockIdx.x * k + c) * cols + j] = total;
    }
}

// Grid (chunks, class tiles); the column sums of R (rows × K) over each chunk, lanes as above.
// parts is chunks × K.
extern "C" __global__ void residual_sums(const double* __restrict__ residual, long long rows, int k,
                                         double* __restrict__ parts) {
    __shared__ double s[XTR_LANES][TILE];
    const int cx = threadIdx.x % TILE, lane = threadIdx.x / TILE;
    const int c = blockIdx.y * TILE + cx;
    const long long start = (long long)blockIdx.x * CHUNK_ROWS;
    const long long end = min(start + CHUNK_ROWS, rows);
    double acc = 0.0;
    if (c < k) {
        for (long long r = start + lane; r < end; r += XTR_LANES) acc += residual[r * k + c];
    }
    s[lane][cx] = acc;
    __syncthreads();
    if (lane == 0 && c < k) {
        double total = 0.0;
        for (int l = 0; l < XTR_LANES; ++l) total += s[l][cx];
        parts[(long long)blockIdx.x * k + c] = total;
    }
}
