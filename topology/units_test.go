package topology

import (
	"strings"
	"testing"
	"time"
)

func TestParseBandwidth(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"10Gbit", 10_000_000_000, false},
		{"100Mbit", 100_000_000, false},
		{"100mbit", 100_000_000, false},
		{"500kbit", 500_000, false},
		{"500KBIT", 500_000, false},
		{"1200bit", 1200, false},
		{"1200", 1200, false},
		{"10 Gbit", 10_000_000_000, false},
		{"0", 0, false},
		{"unlimited", 0, false},
		{"9223372036854775807", 9223372036854775807, false},
		{"9223372036854775808", 0, true},
		{"9223372037Gbit", 0, true},
		{"10GB", 0, true},
		{"10mbps", 0, true},
		{"1.5Gbit", 0, true},
		{"-5Mbit", 0, true},
		{"Gbit", 0, true},
		{"", 0, true},
		{"fast", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBandwidth(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("ParseBandwidth(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "topology: invalid bandwidth") {
				t.Errorf("error %q lacks the prefix", err)
			}
		})
	}
}

func TestFormatBandwidth(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "unlimited"},
		{10_000_000_000, "10Gbit"},
		{1_500_000_000, "1500Mbit"},
		{1_500_000, "1500kbit"},
		{1234567, "1234567bit"},
		{1, "1bit"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := FormatBandwidth(tt.in)
			if got != tt.want {
				t.Errorf("FormatBandwidth(%d) = %q, want %q", tt.in, got, tt.want)
			}
			if back, err := ParseBandwidth(got); err != nil || back != tt.in {
				t.Errorf("ParseBandwidth(%q) = %d, %v; want %d", got, back, err, tt.in)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{time.Millisecond, "1ms"},
		{1500 * time.Microsecond, "1.5ms"},
		{60 * time.Second, "1m"},
		{90 * time.Second, "1m30s"},
		{2 * time.Hour, "2h"},
		{2*time.Hour + 30*time.Second, "2h0m30s"},
		{-time.Minute, "-1m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := FormatDuration(tt.in)
			if got != tt.want {
				t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
			}
			if back, err := time.ParseDuration(got); err != nil || back != tt.in {
				t.Errorf("time.ParseDuration(%q) = %v, %v; want %v", got, back, err, tt.in)
			}
		})
	}
}
