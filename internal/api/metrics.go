package api

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runbox-dev/runbox/internal/runner"
)

// Metrics are the server's Prometheus metrics, on a registry of its own.
type Metrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	queue    prometheus.Gauge
	boxes    prometheus.Gauge
	reserved prometheus.Gauge
	conns    prometheus.Gauge
}

// NewMetrics makes the metrics. cacheBytes, when set, reports the compile
// cache's size.
func NewMetrics(cacheBytes func() float64) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runbox_runs_total", Help: "Runs served, by language and final status.",
		}, []string{"language", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "runbox_run_duration_seconds", Help: "Time to serve a run request, compile and cases included.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}, []string{"language"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runbox_queue_depth", Help: "Requests waiting for a box."}),
		boxes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runbox_boxes_in_use", Help: "Requests holding a box."}),
		reserved: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runbox_memory_reserved_bytes",
			Help: "Bytes of the memory budget held by requests being read, waiting, running or answered."}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "runbox_connections", Help: "Connections open."}),
	}
	m.reg.MustRegister(m.runs, m.duration, m.queue, m.boxes, m.reserved, m.conns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cacheBytes != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "runbox_compile_cache_bytes", Help: "Bytes held by the compile cache.",
		}, cacheBytes))
	}
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

func (m *Metrics) observe(r *runner.Response, d time.Duration) {
	lang := r.Language
	if lang == "" {
		lang = "command"
	}
	status := "ok"
	switch {
	case r.Compile != nil && r.Compile.Status != runner.StatusOK:
		status = "compile_" + string(r.Compile.Status)
	case r.Run != nil:
		status = string(r.Run.Status)
	case len(r.Cases) > 0:
		status = "cases"
	}
	m.runs.WithLabelValues(lang, status).Inc()
	m.duration.WithLabelValues(lang).Observe(d.Seconds())
}
