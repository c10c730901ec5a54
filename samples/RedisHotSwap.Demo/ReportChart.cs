using ScottPlot;

namespace RedisHotSwap.Demo;

/// <summary>report.png: throughput and latency of each instance over time, with the phases and the operator's flips marked.</summary>
internal static class ReportChart
{
    public static void Save(string path, IReadOnlyList<InstanceProcess> instances, Timeline timeline)
    {
        var multiplot = new Multiplot();
        multiplot.AddPlots(2);
        var throughput = multiplot.GetPlot(0);
        var latency = multiplot.GetPlot(1);
        var palette = new ScottPlot.Palettes.Category10();
        foreach (var instance in instances)
        {
            var samples = instance.Samples.Where(s => timeline.Seconds(s.UnixMs) >= 0).ToList(); // not the start-up
            var seconds = samples.Select(s => timeline.Seconds(s.UnixMs)!.Value).ToArray();
            var color = palette.GetColor(instance.Number - 1);

            var ops = throughput.Add.ScatterLine(seconds, samples.Select((s, i) => s.Operations * 1000.0 / Interval(samples, i)).ToArray());
            ops.LegendText = $"instance {instance.Number}";
            ops.Color = color;
            ops.LineWidth = 1.5f;

            var mean = latency.Add.ScatterLine(seconds, samples.Select(s => s.MeanMs).ToArray());
            mean.LegendText = $"instance {instance.Number} mean";
            mean.Color = color;
            mean.LineWidth = 1.5f;
            var max = latency.Add.ScatterLine(seconds, samples.Select(s => s.MaxMs).ToArray());
            max.LegendText = $"instance {instance.Number} slowest";
            max.Color = color.WithAlpha(0.45);
            max.LinePattern = LinePattern.Dotted;
        }

        foreach (var plot in new[] { throughput, latency })
        {
            foreach (var (name, at) in Merged(timeline.Marks().Where(m => m.At >= 0)))
            {
                var line = plot.Add.VerticalLine(at);
                line.Color = Colors.Black.WithAlpha(0.6);
                line.LineWidth = 1;
                line.LinePattern = LinePattern.Dashed;
                if (plot == throughput)
                {
                    line.Text = name;
                    line.LabelOppositeAxis = true;
                }
            }

            foreach (var (instance, at) in timeline.FlipMarks())
            {
                var flip = plot.Add.VerticalLine(at);
                flip.Color = palette.GetColor(instance - 1).WithAlpha(0.5);
                flip.LineWidth = 1.5f;
                if (plot == throughput)
                {
                    flip.LegendText = $"operator flips instance {instance}";
                }
            }

            plot.Axes.Bottom.Label.Text = "seconds since the coordinator started";
            plot.ShowLegend(Alignment.UpperLeft);
        }

        throughput.Axes.Left.Label.Text = "operations per second";
        throughput.Axes.Title.Label.Text = "Throughput of each instance (dashed: coordinator phases; coloured: operator flips)";
        latency.Axes.Left.Label.Text = "latency (ms)";
        latency.Axes.Title.Label.Text = "Latency per 200 ms: mean (solid) and slowest operation (dotted)";
        multiplot.SharedAxes.ShareX([throughput, latency]);
        multiplot.SavePng(path, 1400, 1000);
    }

    // Phases that begin within half a second of each other share one label, so that labels do not overlap.
    private static IEnumerable<(string Name, double At)> Merged(IEnumerable<(string Name, double At)> marks)
    {
        (string Name, double At)? pending = null;
        foreach (var mark in marks)
        {
            if (pending is { } p && mark.At - p.At < 0.5)
            {
                pending = ($"{p.Name} → {mark.Name}", p.At);
                continue;
            }

            if (pending is { } ready)
            {
                yield return ready;
            }

            pending = mark;
        }

        if (pending is { } last)
        {
            yield return last;
        }
    }

    private static double Interval(IReadOnlyList<InstanceProcess.Sample> samples, int i) =>
        i == 0 ? 200 : Math.Max(1, samples[i].UnixMs - samples[i - 1].UnixMs);
}
