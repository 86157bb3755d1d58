module github.com/fntable/fntable

go 1.26
