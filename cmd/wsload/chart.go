package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// chart draws the delivery latency from the instant (p50, p99) against
// the connected clients, from the JSON lines of earlier runs in files, to
// path (PNG).
func chart(path string, files []string) error {
	var runs []result
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "{") {
				var r result
				if err := json.Unmarshal([]byte(l), &r); err != nil {
					f.Close()
					return fmt.Errorf("%s: %w", name, err)
				}
				runs = append(runs, r)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if len(runs) == 0 {
		return fmt.Errorf("no JSON lines of runs in %v", files)
	}
	slices.SortFunc(runs, func(a, b result) int { return a.Clients - b.Clients })
	p50, p99 := make(plotter.XYs, len(runs)), make(plotter.XYs, len(runs))
	for i, r := range runs {
		p50[i] = plotter.XY{X: float64(r.Clients), Y: r.P50Ms}
		p99[i] = plotter.XY{X: float64(r.Clients), Y: r.P99Ms}
	}
	p := plot.New()
	p.Title.Text = "Delivery latency from the instant against connected clients (one run each)"
	p.X.Label.Text = "connected clients (all get the reminder)"
	p.Y.Label.Text = "ms after the fire instant"
	p.Legend.Top, p.Legend.Left = true, true
	if err := plotutil.AddLinePoints(p, "p50", p50, "p99", p99); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}
