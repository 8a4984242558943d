package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// PlotFormat is the image format for a plot file, by its extension: "svg"
// or "png"; an error for anything else.
func PlotFormat(path string) (string, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".svg", ".png":
		return ext[1:], nil
	default:
		return "", fmt.Errorf("plot file %q: want a name ending in .svg or .png", path)
	}
}

// The percentiles labelled on the x axis: at 1/(1-q).
var plotTicks = []struct {
	q     float64
	label string
}{{0.5, "50%"}, {0.9, "90%"}, {0.99, "99%"}, {0.999, "99.9%"}, {0.9999, "99.99%"}}

// plotColors are the lines' colors, one per result in turn.
var plotColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// percentileLine samples h's distribution on a log scale of 1/(1-q):
// points from q = 0 up to the last percentile the recorded values resolve
// (1 - 1/count), then the maximum. Values are in microseconds.
func percentileLine(h interface {
	TotalCount() int64
	ValueAtQuantile(float64) int64
	Max() int64
}) plotter.XYs {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	top := math.Max(float64(n), 2)
	const perDecade = 40
	steps := int(math.Ceil(math.Log10(top) * perDecade))
	var xys plotter.XYs
	for i := 0; i <= steps; i++ {
		x := math.Min(math.Pow(10, float64(i)/perDecade), top)
		q := 1 - 1/x
		v := h.ValueAtQuantile(q * 100)
		xys = append(xys, plotter.XY{X: x, Y: math.Max(float64(v), 1) / 1e3})
	}
	xys = append(xys, plotter.XY{X: top, Y: math.Max(float64(h.Max()), 1) / 1e3})
	return xys
}

// WritePlot draws the hand-off latency distribution of each result as an
// HdrHistogram percentile plot (x: percentile on a log scale of 1/(1-q);
// y: microseconds) and writes it to w in format ("svg" or "png").
func WritePlot(w io.Writer, format string, results []*Result) error {
	p := plot.New()
	title := "gospool bench: hand-off latency"
	if len(results) > 0 {
		r := results[0]
		rate := "back to back"
		if r.Rate > 0 {
			rate = strconv.FormatFloat(r.Rate, 'f', -1, 64) + " tasks/s"
		}
		title = fmt.Sprintf("hand-off latency: %d producers, %d tasks, %s", r.Producers, r.Tasks, rate)
	}
	p.Title.Text = title
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "hand-off latency (µs)"
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	xmax := 1 / (1 - plotTicks[len(plotTicks)-1].q)
	for _, t := range plotTicks {
		ticks = append(ticks, plot.Tick{Value: 1 / (1 - t.q), Label: t.label})
	}
	ticks = append(ticks, plot.Tick{Value: 1, Label: "0%"})
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(12)

	lo, hi := math.Inf(1), math.Inf(-1)
	for i, r := range results {
		if r.HandoffHist == nil {
			continue
		}
		xys := percentileLine(r.HandoffHist)
		if len(xys) == 0 {
			continue
		}
		for _, xy := range xys {
			lo, hi = math.Min(lo, xy.Y), math.Max(hi, xy.Y)
			xmax = math.Max(xmax, xy.X)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.Color = plotColors[i%len(plotColors)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(r.Impl, l)
	}
	p.X.Min, p.X.Max = 1, xmax
	if hi > lo && hi/lo > 50 {
		// A range over decades: a log scale, so that the low percentiles
		// are not flattened by the tail.
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		p.Y.Min, p.Y.Max = lo/1.2, hi*1.2
	} else if hi >= lo {
		p.Y.Min, p.Y.Max = 0, hi*1.1
	}
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, format)
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

// logTicks marks 1, 2 and 5 times each power of ten, labelling them in
// plain numbers (0.5, 20, 1000) rather than as powers.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for i, m := range []float64{1, 2, 5, 3, 4, 6, 7, 8, 9} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if i < 3 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
