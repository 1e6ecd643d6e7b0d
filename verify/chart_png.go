package verify

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"strings"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// png rasterises the scene: anti-aliased lines, basicfont text (ASCII; the
// title at twice the size).
func (s *scene) png() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, s.w, s.h))
	for _, it := range s.items {
		switch it.shape {
		case shapeRect:
			r := image.Rect(int(math.Round(it.x)), int(math.Round(it.y)),
				int(math.Round(it.x+it.w)), int(math.Round(it.y+it.h)))
			draw.Draw(img, r, image.NewUniform(it.col), image.Point{}, draw.Over)
		case shapeLine:
			strokePolyline(img, it.pts, it.width, it.dash, it.col)
		case shapeText:
			drawText(img, it)
		}
	}
	return img
}

// strokePolyline draws pts as a line of the given width, dashed when dash
// is positive. Every piece is added to one path with the same winding, so
// overlaps at the joints do not cancel out.
func strokePolyline(img *image.RGBA, pts []pt, width, dash float64, c color.NRGBA) {
	if len(pts) < 2 {
		return
	}
	z := vector.NewRasterizer(img.Bounds().Dx(), img.Bounds().Dy())
	hw := math.Max(width, 1) / 2
	quad := func(a, b pt) {
		dx, dy := b.X-a.X, b.Y-a.Y
		l := math.Hypot(dx, dy)
		if l == 0 {
			return
		}
		nx, ny := -dy/l*hw, dx/l*hw
		z.MoveTo(float32(a.X+nx), float32(a.Y+ny))
		z.LineTo(float32(b.X+nx), float32(b.Y+ny))
		z.LineTo(float32(b.X-nx), float32(b.Y-ny))
		z.LineTo(float32(a.X-nx), float32(a.Y-ny))
		z.ClosePath()
	}
	joint := func(p pt) { // an octagon, wound like the quads
		for k := 0; k < 8; k++ {
			a := -float64(k) * math.Pi / 4
			x, y := float32(p.X+hw*math.Cos(a)), float32(p.Y+hw*math.Sin(a))
			if k == 0 {
				z.MoveTo(x, y)
			} else {
				z.LineTo(x, y)
			}
		}
		z.ClosePath()
	}
	if dash > 0 {
		gap := dash * 0.7
		on, left := true, dash // drawing?, length left in the current dash or gap
		for i := 1; i < len(pts); i++ {
			a, b := pts[i-1], pts[i]
			l := math.Hypot(b.X-a.X, b.Y-a.Y)
			for pos := 0.0; pos < l; {
				step := math.Min(left, l-pos)
				p := pt{a.X + (b.X-a.X)*pos/l, a.Y + (b.Y-a.Y)*pos/l}
				q := pt{a.X + (b.X-a.X)*(pos+step)/l, a.Y + (b.Y-a.Y)*(pos+step)/l}
				if on {
					quad(p, q)
				}
				pos += step
				left -= step
				if left <= 1e-9 {
					on = !on
					left = dash
					if !on {
						left = gap
					}
				}
			}
		}
	} else {
		for i := 1; i < len(pts); i++ {
			quad(pts[i-1], pts[i])
			if i < len(pts)-1 && width > 1.2 {
				joint(pts[i])
			}
		}
	}
	z.Draw(img, img.Bounds(), image.NewUniform(c), image.Point{})
}

// asciiText replaces what basicfont cannot draw.
func asciiText(s string) string {
	s = strings.NewReplacer("≥", ">=", "≤", "<=", "→", "->", "·", "|", "—", "-", "–", "-", "✓", "ok", "✗", "x", "≠", "!=").Replace(s)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

func drawText(img *image.RGBA, it item) {
	t := asciiText(it.text)
	face := basicfont.Face7x13
	scale := 1
	if it.big {
		scale = 2
	}
	w := len(t) * face.Advance * scale
	x := int(math.Round(it.x))
	switch it.anchor {
	case anchorMiddle:
		x -= w / 2
	case anchorEnd:
		x -= w
	}
	y := int(math.Round(it.y))
	src := image.NewUniform(it.col)
	if scale == 1 {
		d := font.Drawer{Dst: img, Src: src, Face: face, Dot: fixed.P(x, y)}
		d.DrawString(t)
		return
	}
	// Twice the size: draw small, then scale up with a smooth filter. A
	// bold effect comes from drawing the small text twice, a pixel apart.
	h := face.Ascent + face.Descent
	small := image.NewRGBA(image.Rect(0, 0, len(t)*face.Advance+1, h))
	for dx := range 2 {
		d := font.Drawer{Dst: small, Src: src, Face: face, Dot: fixed.P(dx, face.Ascent)}
		d.DrawString(t)
	}
	dst := image.Rect(x, y-face.Ascent*scale, x+small.Bounds().Dx()*scale, y+face.Descent*scale)
	xdraw.ApproxBiLinear.Scale(img, dst, small, small.Bounds(), draw.Over, nil)
}
