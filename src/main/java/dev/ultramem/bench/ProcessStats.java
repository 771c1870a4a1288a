package dev.ultramem.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * This process's resident memory and page faults as Linux reports them (/proc/self): peak RSS counts
 * the pages of mapped tables that are resident, so it shows what decoding from a mapped checkpoint
 * really holds in RAM. Values are -1 where /proc is not available.
 */
public record ProcessStats(long peakRssBytes, long rssBytes, long minorFaults, long majorFaults) {

    /** The figures now. */
    public static ProcessStats now() {
        long hwm = -1, rss = -1, minflt = -1, majflt = -1;
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) hwm = kib(line);
                else if (line.startsWith("VmRSS:")) rss = kib(line);
            }
            String stat = Files.readString(Path.of("/proc/self/stat"));
            // fields after the parenthesised command name: state is field 3, minflt 10, majflt 12
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            minflt = Long.parseLong(f[7]);
            majflt = Long.parseLong(f[9]);
        } catch (IOException | RuntimeException e) {
            // not Linux, or an unexpected format: report what was read
        }
        return new ProcessStats(hwm, rss, minflt, majflt);
    }

    private static long kib(String line) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
    }
}
