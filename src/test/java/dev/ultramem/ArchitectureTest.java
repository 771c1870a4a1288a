package dev.ultramem;

import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.junit.AnalyzeClasses;
import com.tngtech.archunit.junit.ArchTest;
import com.tngtech.archunit.lang.ArchRule;

import static com.tngtech.archunit.library.Architectures.layeredArchitecture;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

/**
 * The package graph of the main code (tests may reach across it). Arrows read "is used by":
 * <pre>
 *   core → kernel → layer → memory → model → train, infer → serve → bench → cli
 *   train → experiment → cli
 *   core → data, io (low: they use core only)
 * </pre>
 * A package may use the packages below it on the ladder and none above or beside it, and no two
 * packages may depend on each other, directly or through others.
 */
@AnalyzeClasses(packages = "dev.ultramem", importOptions = ImportOption.DoNotIncludeTests.class)
class ArchitectureTest {

    @ArchTest
    static final ArchRule noCycles = slices().matching("dev.ultramem.(*)..").should().beFreeOfCycles();

    @ArchTest
    static final ArchRule ladder = layeredArchitecture().consideringOnlyDependenciesInLayers()
            .layer("core").definedBy("dev.ultramem.core..")
            .layer("kernel").definedBy("dev.ultramem.kernel..")
            .layer("data").definedBy("dev.ultramem.data..")
            .layer("io").definedBy("dev.ultramem.io..")
            .layer("layer").definedBy("dev.ultramem.layer..")
            .layer("memory").definedBy("dev.ultramem.memory..")
            .layer("model").definedBy("dev.ultramem.model..")
            .layer("train").definedBy("dev.ultramem.train..")
            .layer("infer").definedBy("dev.ultramem.infer..")
            .layer("serve").definedBy("dev.ultramem.serve..")
            .layer("bench").definedBy("dev.ultramem.bench..")
            .layer("experiment").definedBy("dev.ultramem.experiment..")
            .layer("cli").definedBy("dev.ultramem.cli..")
            .whereLayer("core").mayNotAccessAnyLayer()
            .whereLayer("kernel").mayOnlyAccessLayers("core")
            .whereLayer("data").mayOnlyAccessLayers("core")
            .whereLayer("io").mayOnlyAccessLayers("core")
            .whereLayer("layer").mayOnlyAccessLayers("core", "kernel")
            .whereLayer("memory").mayOnlyAccessLayers("core", "kernel", "layer")
            .whereLayer("model").mayOnlyAccessLayers("core", "kernel", "layer", "memory", "data", "io")
            .whereLayer("train").mayOnlyAccessLayers("core", "kernel", "layer", "memory", "data", "io", "model")
            .whereLayer("infer").mayOnlyAccessLayers("core", "kernel", "layer", "memory", "data", "io", "model")
            .whereLayer("serve").mayOnlyAccessLayers("core", "kernel", "layer", "memory", "data", "io", "model", "train", "infer")
            .whereLayer("bench").mayOnlyAccessLayers("core", "kernel", "layer", "memory", "data", "io", "model", "train", "infer", "serve")
            .whereLayer("experiment").mayOnlyAccessLayers("core", "kernel", "layer", "memory", "data", "io", "model", "train")
            .whereLayer("cli").mayNotBeAccessedByAnyLayer();
}
