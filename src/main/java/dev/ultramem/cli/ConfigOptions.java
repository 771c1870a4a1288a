package dev.ultramem.cli;

import dev.ultramem.train.JobConfig;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The options that build a job config: --preset, then --config, then --set overrides (train, init). */
final class ConfigOptions {
    @Option(names = "--config", paramLabel = "FILE", description = "JSON or YAML file with 'model' and 'train' sections")
    Path config;

    @Option(names = "--preset", description = "named preset (default: " + Main.DEFAULT_PRESET + " unless --config is given)")
    String preset;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "override, e.g. --set train.lr=1e-3 --set model.d_model=128")
    List<String> overrides = new ArrayList<>();

    /** The job with these options and then the extra overrides applied. */
    JobConfig build(List<String> extra) {
        List<String> sets = new ArrayList<>(overrides);
        sets.addAll(extra);
        return JobConfig.build(preset != null ? preset : (config == null ? Main.DEFAULT_PRESET : null), config, sets);
    }
}
