package dev.ultramem.layer;

import dev.ultramem.core.Param;
import dev.ultramem.kernel.Kernels;

/**
 * RMSNorm with an affine weight and no bias: y = w ⊙ x / sqrt(mean(x²) + eps), over rows of length d.
 * Stateless apart from the weight: the caller owns the input and the per-row 1/rms buffer.
 */
public final class RmsNorm {
    public final Param weight;
    public final int d;
    public final float eps;
    private final Kernels k;

    public RmsNorm(String name, int d, double eps, Kernels kernels) {
        this.weight = Param.of(name, Param.Group.DECAY, d);
        this.d = d;
        this.eps = (float) eps;
        this.k = kernels;
    }

    public void initialize() { java.util.Arrays.fill(weight.data(), 1f); }

    public void forward(int rows, float[] x, int xOff, float[] y, int yOff, float[] rstd, int rOff) {
        k.rmsnormForward(rows, d, x, xOff, weight.data(), eps, y, yOff, rstd, rOff);
    }

    /** dx (+)= ∂L/∂x, weight.grad += ∂L/∂w. */
    public void backward(int rows, float[] x, int xOff, float[] rstd, int rOff, float[] dy, int dyOff,
                         float[] dx, int dxOff, boolean accumulateDx) {
        k.rmsnormBackward(rows, d, x, xOff, weight.data(), rstd, rOff, dy, dyOff, dx, dxOff, weight.grad(), accumulateDx);
    }
}
