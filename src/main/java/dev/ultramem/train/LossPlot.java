package dev.ultramem.train;

import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.markers.SeriesMarkers;

import java.nio.file.Path;

/** The loss curve as a PNG: training loss per step and validation loss at each evaluation. */
public final class LossPlot {
    private LossPlot() {}

    /** Writes the plot; returns false (and leaves the run intact) if the platform cannot render it. */
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
            BitmapEncoder.saveBitmap(chart, png.toString(), BitmapEncoder.BitmapFormat.PNG);
            return true;
        } catch (Exception | LinkageError e) {
            System.err.println("warning: could not write " + png + " (" + e + ")");
            return false;
        }
    }
}
