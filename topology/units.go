package topology

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// bandwidthUnits are the units [ParseBandwidth] accepts, largest first, in
// bits per second (decimal, as tc counts them).
var bandwidthUnits = []struct {
	name string
	bits int64
}{
	{"Gbit", 1_000_000_000},
	{"Mbit", 1_000_000},
	{"kbit", 1_000},
	{"bit", 1},
}

// ParseBandwidth parses a bandwidth such as "10Gbit", "100Mbit", "500kbit",
// "1200bit" or a plain integer, in bits per second. Units are
// case-insensitive and may follow a space; "0" and "unlimited" mean no limit.
// Bytes-per-second units ("mbps") are refused on purpose: tc reads them as
// bytes, a common trap.
func ParseBandwidth(s string) (int64, error) {
	bits, problem := parseBandwidth(s)
	if problem != "" {
		return 0, errors.New("topology: " + problem)
	}
	return bits, nil
}

// parseBandwidth is [ParseBandwidth] with the problem, if any, as a message.
func parseBandwidth(s string) (bits int64, problem string) {
	text := strings.TrimSpace(s)
	if strings.EqualFold(text, "unlimited") {
		return 0, ""
	}
	digits := strings.TrimRightFunc(text, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(text[len(digits):])
	if !isDigits(digits) {
		return 0, fmt.Sprintf("invalid bandwidth %q: use an integer and a unit bit, kbit, Mbit or Gbit, e.g. 10Gbit", s)
	}
	mult, ok := bandwidthUnit(unit)
	if !ok {
		return 0, fmt.Sprintf("invalid bandwidth %q: unknown unit %q (use bit, kbit, Mbit or Gbit)", s, unit)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, fmt.Sprintf("invalid bandwidth %q: too large", s)
	}
	return n * mult, ""
}

// bandwidthUnit returns the multiplier of a unit name; "" is bits.
func bandwidthUnit(unit string) (int64, bool) {
	if unit == "" {
		return 1, true
	}
	for _, u := range bandwidthUnits {
		if strings.EqualFold(unit, u.name) {
			return u.bits, true
		}
	}
	return 0, false
}

// FormatBandwidth formats bits per second with the largest unit that
// divides it exactly ("10Gbit", "1500kbit", "1234bit"), so that
// [ParseBandwidth] gives the same number back. 0 is "unlimited".
func FormatBandwidth(bits int64) string {
	if bits == 0 {
		return "unlimited"
	}
	for _, u := range bandwidthUnits {
		if bits%u.bits == 0 {
			return strconv.FormatInt(bits/u.bits, 10) + u.name
		}
	}
	return strconv.FormatInt(bits, 10) + "bit"
}

// FormatDuration formats a duration the way [Topology.Marshal] writes it:
// like [time.Duration.String] without zero trailing units ("1m", not "1m0s").
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
