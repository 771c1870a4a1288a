package dev.ultramem.model;

import dev.ultramem.core.UserError;

import java.util.ArrayList;
import java.util.List;

/**
 * Which blocks get memory layers ({@code mem_insert_way}). Memory layer k reads block {@code from}'s
 * normalised FFN input and its output is added to the residual stream after block {@code to}.
 */
public record MemoryPlacement(int from, int to) {

    public static List<MemoryPlacement> parse(String way, int nLayers) {
        List<MemoryPlacement> out = new ArrayList<>();
        if (way == null || way.isBlank() || way.equals("no_mem")) return out;
        if (way.equals("full")) {
            for (int i = 0; i < nLayers; i++) out.add(new MemoryPlacement(i, i));
            return out;
        }
        int lastEnd = -1;
        for (String part : way.split("/")) {
            String[] ab = part.trim().split(":");
            if (ab.length != 2) throw new UserError("config: mem_insert_way entry '" + part + "' is not of the form a:b");
            int a, b;
            try {
                a = Integer.parseInt(ab[0].trim());
                b = Integer.parseInt(ab[1].trim());
            } catch (NumberFormatException e) {
                throw new UserError("config: mem_insert_way entry '" + part + "' is not of the form a:b");
            }
            if (a < 0 || b < a || b >= nLayers)
                throw new UserError("config: mem_insert_way entry '" + part + "' needs 0 <= a <= b < n_layers (" + nLayers + ")");
            if (a <= lastEnd) throw new UserError("config: mem_insert_way ranges must be increasing and must not overlap ('" + way + "')");
            lastEnd = b;
            out.add(new MemoryPlacement(a, b));
        }
        return out;
    }
}
