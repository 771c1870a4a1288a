package dev.ultramem.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.Configs;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;

import java.nio.file.Path;
import java.util.function.Consumer;

/**
 * The memory check the commands run before they build a model: the job's {@link MemoryPlan} for what
 * the command does must fit this machine (heap limit, direct-memory limit, RAM).
 */
final class Capacity {
    private Capacity() {}

    /** Refuses a job whose plan for the use does not fit; returns the plan. */
    static MemoryPlan require(MemoryPlan.Use use, JobConfig job) {
        return MemoryPlan.of(use, job.model, job.train).requireFits();
    }

    /**
     * The job stored in a checkpoint, read from the file's header without building the model, or null
     * when the header has no job (then {@link Checkpoint#load} reports what is wrong with the file).
     */
    static JobConfig peek(Path checkpoint) {
        Path file = Checkpoint.resolve(checkpoint);
        try (Safetensors st = Safetensors.open(file)) {
            JsonNode model = st.metadataJson("model_config"), train = st.metadataJson("train_config");
            if (model == null || train == null) return null;
            ObjectNode tree = Configs.JSON.createObjectNode();
            tree.set("model", model);
            tree.set("train", train);
            try {
                return JobConfig.fromTree(tree);
            } catch (UserError e) {
                throw new UserError(file + ": " + e.getMessage(), e);
            }
        }
    }

    /**
     * Refuses a checkpoint whose job (adjusted as the command will run it, e.g. a new train.steps) does
     * not fit the use, before the checkpoint is loaded; returns the plan, or null when the header has no job.
     */
    static MemoryPlan requireForCheckpoint(Path checkpoint, MemoryPlan.Use use, Consumer<JobConfig> adjust) {
        JobConfig job = peek(checkpoint);
        if (job == null) return null;
        adjust.accept(job);
        try {
            return require(use, job);
        } catch (UserError e) {
            throw new UserError(Checkpoint.resolve(checkpoint) + ": " + e.getMessage(), e);
        }
    }
}
