package dev.ultramem.experiment;

import java.util.Map;

/**
 * What a finished run left: the final validation loss (nats per byte), bits per byte, task accuracies
 * and the row's costs as {@code info} counts them (on the model initialised with seed 1).
 */
public record RunResult(String id, String variant, long seed, long steps, long tokens, double valLoss, double bitsPerByte,
                        double finalTrainLoss, Map<String, Double> tasks, long totalParams, long tableParams,
                        long activatedParamsPerToken, long forwardMacsPerToken, long trainingFlopsPerToken,
                        long paramBytesPerTokenB1, long paramBytesPerTokenB64, double lr, double valueLrTimes,
                        double wallSeconds) {

    public static final String FILE = "result.json";

    /** The value of a metric name used by claims: val_loss, bits_per_byte or a task's name. */
    public double metric(String name) {
        return switch (name) {
            case Claim.VAL_LOSS -> valLoss;
            case "bits_per_byte" -> bitsPerByte;
            default -> tasks.getOrDefault(name, Double.NaN);
        };
    }
}
