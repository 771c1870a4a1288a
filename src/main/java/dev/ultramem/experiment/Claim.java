package dev.ultramem.experiment;

/**
 * A claim of a paper as a comparison of two rows of a grid: {@code better} reaches a better value of
 * {@code metric} than {@code worse} (lower for losses, higher for task accuracies).
 *
 * @param paper where the claim comes from and the paper's own numbers
 */
public record Claim(String text, String better, String worse, String metric, String paper) {
    public static final String VAL_LOSS = "val_loss";

    public static Claim lowerLoss(String text, String better, String worse, String paper) {
        return new Claim(text, better, worse, VAL_LOSS, paper);
    }

    public boolean lowerIsBetter() { return metric.equals(VAL_LOSS) || metric.equals("bits_per_byte"); }
}
