package main

import "fmt"

// chartView is a bar chart of a rollout drawn on the server as inline
// SVG: one group of bars per wave, one bar per count. No script draws it,
// so it shows on an isolated network and in a page saved to disk.
type chartView struct {
	Width, Height int
	Bars          []chartBar
	Labels        []chartLabel
	Axis          []chartLabel // the y-axis scale
	Baseline      int          // y of the axis line
	Series        []string     // legend, in bar order
}

type chartBar struct {
	Series string
	Wave   int
	Value  int
	X, Y   int
	W, H   int
}

type chartLabel struct {
	X, Y int
	Text string
}

// chartSeries are the counts a chart shows, in bar order.
var chartSeries = []struct {
	name string
	of   func(*waveCounts) int
}{
	{"eligible", func(c *waveCounts) int { return c.Eligible }},
	{"attempted", func(c *waveCounts) int { return c.Attempted }},
	{"confirmed", func(c *waveCounts) int { return c.Confirmed }},
	{"reverted", func(c *waveCounts) int { return c.Reverted }},
	{"failed", func(c *waveCounts) int { return c.Failed }},
}

// Chart geometry, in SVG user units.
const (
	chartBarW   = 12
	chartGap    = 18 // between wave groups
	chartLeft   = 48 // room for the scale
	chartTop    = 10
	chartPlot   = 120 // height of the plot area
	chartBottom = 22  // room for the wave labels
)

// drawChart lays out the bars of waves that have counts; nil when none
// has.
func drawChart(waves []waveView) *chartView {
	top := 0
	n := 0
	for _, w := range waves {
		if w.Counts == nil {
			continue
		}
		n++
		for _, s := range chartSeries {
			top = max(top, s.of(w.Counts))
		}
	}
	if n == 0 {
		return nil
	}
	scale := niceCeil(top)
	groupW := len(chartSeries)*chartBarW + chartGap
	c := &chartView{
		Width:    chartLeft + n*groupW,
		Height:   chartTop + chartPlot + chartBottom,
		Baseline: chartTop + chartPlot,
	}
	for _, s := range chartSeries {
		c.Series = append(c.Series, s.name)
	}
	for _, v := range []int{0, scale / 2, scale} {
		if v == 0 && len(c.Axis) > 0 {
			continue // a scale of 1 has no half
		}
		c.Axis = append(c.Axis, chartLabel{X: chartLeft - 6, Y: c.Baseline - v*chartPlot/scale + 4, Text: fmt.Sprint(v)})
	}
	x := chartLeft + chartGap/2
	for _, w := range waves {
		if w.Counts == nil {
			continue
		}
		for i, s := range chartSeries {
			v := s.of(w.Counts)
			h := v * chartPlot / scale
			if v > 0 && h == 0 {
				h = 1 // a count that exists stays visible
			}
			c.Bars = append(c.Bars, chartBar{Series: s.name, Wave: w.N, Value: v,
				X: x + i*chartBarW, Y: c.Baseline - h, W: chartBarW - 2, H: h})
		}
		c.Labels = append(c.Labels, chartLabel{X: x + len(chartSeries)*chartBarW/2, Y: c.Baseline + 16, Text: fmt.Sprintf("wave %d", w.N)})
		x += groupW
	}
	return c
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten (at least 1), so
// that the scale reads well.
func niceCeil(n int) int {
	p := 1
	for {
		for _, m := range []int{1, 2, 5} {
			if m*p >= n && m*p > 0 {
				return m * p
			}
		}
		p *= 10
	}
}
