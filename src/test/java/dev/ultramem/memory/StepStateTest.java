package dev.ultramem.memory;

import org.junit.jupiter.api.Test;

import java.lang.reflect.Field;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The step state's declared size per token (read by the memory plan) against the arrays it allocates. */
class StepStateTest {

    /** Float elements of every float[] field of a state object, counted by reflection. */
    private static long floats(Object state) throws IllegalAccessException {
        long sum = 0;
        for (Field f : state.getClass().getDeclaredFields())
            if (f.getType() == float[].class) { f.setAccessible(true); sum += ((float[]) f.get(state)).length; }
        return sum;
    }

    @Test
    void declaredSizesMatchTheAllocatedArrays() throws IllegalAccessException {
        int tokens = 5;
        for (int[] s : new int[][]{{96, 16, 12, 2, 32}, {24, 0, 8, 3, 16}}) {
            int width = s[0], preVdim = s[1], entries = s[2], cores = s[3], d = s[4];
            assertEquals(tokens * UltraMemV2.StepState.floatsPerToken(width, preVdim, entries, cores, d),
                    floats(new UltraMemV2.StepState(tokens, width, preVdim, entries, cores, d)));
            assertEquals(tokens * UltraMemV1.StepState.floatsPerToken(width, entries, cores),
                    floats(new UltraMemV1.StepState(tokens, width, entries, cores)));
            assertEquals(tokens * Pkm.StepState.floatsPerToken(width, entries), floats(new Pkm.StepState(tokens, width, entries)));
            assertEquals(tokens * MemoryPlus.StepState.floatsPerToken(width, cores, d, entries),
                    floats(new MemoryPlus.StepState(tokens, width, cores, d, entries)));
        }
    }
}
