package metrics

import (
	"math"
	"sort"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Bucket bounds, shared by the per-kind histograms and the per-room ones so
// that a room's series and its kind's totals read the same way.
var (
	// durationBuckets are in seconds: 100 µs (a send joining a batch) to
	// 10 s (a commit stuck on the database).
	durationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	// batchBuckets are commands per batch, up to rooms.MaxBatch (100).
	batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 100}
)

// histogram is a fixed-bucket histogram an actor writes with atomics and a
// scrape reads without stopping it. Its count is the sum of its buckets, so
// a reader never sees a count its buckets do not add up to.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // counts[i] observations ≤ bounds[i] (and > bounds[i-1]); the last is +Inf
	sum    atomic.Uint64   // float64 bits
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	h.counts[sort.SearchFloat64s(h.bounds, v)].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// snapshot reads the histogram: per-bucket counts (not cumulative), the
// total count and the sum.
func (h *histogram) snapshot() histogramSnapshot {
	s := histogramSnapshot{bounds: h.bounds, counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		s.counts[i] = h.counts[i].Load()
		s.count += s.counts[i]
	}
	s.sum = math.Float64frombits(h.sum.Load())
	return s
}

type histogramSnapshot struct {
	bounds []float64
	counts []uint64
	count  uint64
	sum    float64
}

// constHistogram is the snapshot as a Prometheus metric.
func (s histogramSnapshot) constHistogram(desc *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(s.bounds))
	var cum uint64
	for i, b := range s.bounds {
		cum += s.counts[i]
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(desc, s.count, s.sum, buckets, labels...)
}

// quantile estimates the q-quantile (0 < q < 1) the way Prometheus'
// histogram_quantile does: linear interpolation inside the bucket holding
// the rank; the highest finite bound when the rank is in the +Inf bucket;
// 0 for an empty histogram.
func (s histogramSnapshot) quantile(q float64) float64 {
	if s.count == 0 {
		return 0
	}
	rank := q * float64(s.count)
	var cum uint64
	for i, n := range s.counts {
		if float64(cum+n) < rank || n == 0 {
			cum += n
			continue
		}
		if i == len(s.bounds) {
			return s.bounds[len(s.bounds)-1]
		}
		lower := 0.0
		if i > 0 {
			lower = s.bounds[i-1]
		}
		return lower + (s.bounds[i]-lower)*(rank-float64(cum))/float64(n)
	}
	return s.bounds[len(s.bounds)-1]
}

// Distribution summarises a histogram for the admin API: how many
// observations, their mean, and percentiles estimated from the buckets.
// Latencies are in seconds, batch sizes in commands.
type Distribution struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
}

func (s histogramSnapshot) distribution() Distribution {
	d := Distribution{Count: s.count}
	if s.count > 0 {
		d.Mean = s.sum / float64(s.count)
		d.P50, d.P90, d.P99 = s.quantile(0.5), s.quantile(0.9), s.quantile(0.99)
	}
	return d
}
