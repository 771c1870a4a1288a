package dev.ultramem.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.ultramem.cli.MainTest.assertUserError;
import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** {@code bench decode --checkpoint}: a checkpoint's model decoded with its tables mapped, page faults per token beside each step. */
class BenchDecodeCheckpointTest {
    @TempDir Path dir;

    @Test
    void benchesAMappedCheckpointWithPageFaultsPerToken() throws Exception {
        Path ck = dir.resolve("run"), out = dir.resolve("bench");
        MainTest.Result init = run("init", "--preset", "family-ultramem-v2", "--set", "model.mem_knum=12", "--set", "model.n_layers=2",
                "--set", "model.mem_knn=8", "--out", ck.toString());
        assertEquals(0, init.code(), init.err());
        assertUserError(run("bench", "decode", "--checkpoint", ck.toString(), "--context", "100000"), "max_seq_len");
        MainTest.Result r = run("bench", "decode", "--checkpoint", ck.toString(), "--batches", "1,3", "--context", "8",
                "--samples", "2", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        List<String> csv = Files.readAllLines(out.resolve("decode.csv"));
        assertEquals("model,batch,step_ms,tokens_per_s,param_bytes,kv_bytes,floor_ms,compute_floor_ms,minor_faults_per_token,major_faults_per_token", csv.get(0));
        assertEquals(3, csv.size(), String.join("\n", csv));
        for (int i = 1; i < csv.size(); i++) {
            String[] f = csv.get(i).split(",");
            assertEquals("run", f[0]);
            assertEquals(i == 1 ? "1" : "3", f[1]);
            assertTrue(Double.parseDouble(f[2]) > 0, csv.get(i));
            assertTrue(Double.parseDouble(f[7]) >= 0 && Double.parseDouble(f[8]) >= 0, "faults per token: " + csv.get(i));
        }
        String md = Files.readString(out.resolve("decode.md"));
        assertTrue(md.contains("tables mapped from the file: ") && !md.contains("tables mapped from the file: 0 B"), md);
        assertTrue(md.contains("peak RSS"), md);
    }
}
