package dev.ultramem.train;

import dev.ultramem.io.AtomicFiles;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.io.IOException;
import java.nio.file.Path;

/** The loss curve as a PNG: training loss per step and validation loss at each evaluation. */
public final class LossPlot {
    private LossPlot() {}

    /**
     * Writes the plot atomically (a failed write leaves the previous one); returns false, with a
     * warning, if the platform cannot render it or the file cannot be written.
     */
    public static boolean write(Path png, float[] train, float[] valSteps, float[] val) {
        if (train.length == 0) return false;
        System.setProperty("java.awt.headless", "true");
        try {
            XYChart chart = new XYChartBuilder().width(900).height(540).title("loss")
                    .xAxisTitle("step").yAxisTitle("cross-entropy (nats/byte)").build();
            chart.getStyler().setLegendVisible(true);
            double[] x = new double[train.length], y = new double[train.length];
            for (int i = 0; i < train.length; i++) { x[i] = i + 1; y[i] = train[i]; }
            XYSeries s = chart.addSeries("train", x, y);
            s.setMarker(SeriesMarkers.NONE);
            if (val.length > 0) {
                double[] vx = new double[val.length], vy = new double[val.length];
                for (int i = 0; i < val.length; i++) { vx[i] = valSteps[i]; vy[i] = val[i]; }
                chart.addSeries("validation", vx, vy).setMarker(SeriesMarkers.CIRCLE);
            }
            AtomicFiles.write(png, BitmapEncoder.getBitmapBytes(chart, BitmapEncoder.BitmapFormat.PNG));
            return true;
        } catch (IOException e) {
            System.err.println("warning: " + AtomicFiles.writeError(png, e, "; the previous plot is intact").getMessage());
            return false;
        } catch (Exception | LinkageError e) {
            System.err.println("warning: could not write " + png + " (" + e + ")");
            return false;
        }
    }
}
