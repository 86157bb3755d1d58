// A C++ program for the symbol readers' tests: namespaces, templates,
// classes, inline functions and lambdas, built with g++ -g -O2 so that the
// binary has inlined frames and mangled names.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace geom {

template <typename T>
struct Vec {
	T x, y;
	Vec operator+(const Vec &o) const { return {x + o.x, y + o.y}; }
	T dot(const Vec &o) const { return x * o.x + y * o.y; }
};

class Shape {
public:
	virtual ~Shape() = default;
	virtual double area() const = 0;
	virtual std::string name() const = 0;
};

class Rect : public Shape {
public:
	Rect(double w, double h) : w_(w), h_(h) {}
	double area() const override { return w_ * h_; }
	std::string name() const override { return "rect"; }

private:
	double w_, h_;
};

class Circle : public Shape {
public:
	explicit Circle(double r) : r_(r) {}
	double area() const override { return 3.14159265358979 * r_ * r_; }
	std::string name() const override { return "circle"; }

private:
	double r_;
};

inline double scaled(double v, double k) { return v * k + 0.5; }

} // namespace geom

namespace util {

template <typename C, typename F>
auto sum_by(const C &c, F f) -> decltype(f(*c.begin())) {
	decltype(f(*c.begin())) s{};
	for (const auto &e : c)
		s += f(e);
	return s;
}

template <typename K, typename V>
class Counter {
public:
	void add(const K &k, V n = 1) { m_[k] += n; }
	V get(const K &k) const {
		auto it = m_.find(k);
		return it == m_.end() ? V{} : it->second;
	}
	template <typename F>
	void each(F f) const {
		for (const auto &kv : m_)
			f(kv.first, kv.second);
	}

private:
	std::map<K, V> m_;
};

static inline unsigned mix(unsigned h, unsigned v) {
	h ^= v + 0x9e3779b9u + (h << 6) + (h >> 2);
	return h;
}

unsigned hash_string(const std::string &s) {
	unsigned h = 0;
	for (unsigned char c : s)
		h = mix(h, c);
	return h;
}

} // namespace util

static std::vector<std::unique_ptr<geom::Shape>> make_shapes(int n) {
	std::vector<std::unique_ptr<geom::Shape>> v;
	for (int i = 0; i < n; i++) {
		if (i % 3 == 0)
			v.push_back(std::make_unique<geom::Circle>(i * 0.5));
		else
			v.push_back(std::make_unique<geom::Rect>(i, i + 1));
	}
	return v;
}

int main(int argc, char **argv) {
	int n = argc > 1 ? std::atoi(argv[1]) : 20;
	auto shapes = make_shapes(n);
	double total = util::sum_by(shapes, [](const std::unique_ptr<geom::Shape> &s) { return s->area(); });

	util::Counter<std::string, int> names;
	for (const auto &s : shapes)
		names.add(s->name());
	names.each([](const std::string &k, int v) { std::printf("%s=%d\n", k.c_str(), v); });

	std::vector<geom::Vec<int>> pts;
	for (int i = 0; i < n; i++)
		pts.push_back({i, n - i});
	auto acc = std::accumulate(pts.begin(), pts.end(), geom::Vec<int>{0, 0});
	std::sort(pts.begin(), pts.end(), [](const geom::Vec<int> &a, const geom::Vec<int> &b) { return a.dot(a) < b.dot(b); });

	std::function<unsigned(const std::string &)> h = util::hash_string;
	unsigned hs = 0;
	for (int i = 0; i < n; i++)
		hs = util::mix(hs, h(std::to_string(i)));

	std::printf("%.2f %d %d %u %.2f %d\n", total, acc.x, acc.y, hs, geom::scaled(total, 2), names.get("rect"));
	return 0;
}
