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
            var marks = timeline.Marks().Where(m => m.At >= 0).ToList();
            foreach (var (name, at) in Merged(marks, marks.Count == 0 ? 0 : marks.Max(m => m.At) / 12))
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
        // No title above: the phase labels stand there. Dashed lines are the coordinator's phases, coloured ones the flips.
        throughput.Axes.Top.MinimumSize = 36; // room for the phase labels
        throughput.Axes.Bottom.Label.Text = "throughput of each instance; seconds since the coordinator started (dashed: its phases; coloured: operator flips)";
        latency.Axes.Left.Label.Text = "latency (ms)";
        latency.Axes.Title.Label.Text = "Latency per 200 ms: mean (solid) and slowest operation (dotted)";
        multiplot.SharedAxes.ShareX([throughput, latency]);
        multiplot.SavePng(path, 1400, 1000);
    }

    // Phases that begin closer than a label's width (about a twelfth of the run) share one label, so labels do not overlap.
    private static IEnumerable<(string Name, double At)> Merged(IEnumerable<(string Name, double At)> marks, double closer)
    {
        (string Name, double At)? pending = null;
        foreach (var mark in marks)
        {
            if (pending is { } p && mark.At - p.At < Math.Max(0.5, closer))
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
