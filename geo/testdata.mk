# geo/testdata.mk: the GeoIP test databases, written by tools/mkmmdb.pl
# (needs Debian's libmaxmind-db-writer-perl). Included by the top Makefile;
# $(B) is the build directory. tests/unit/test_geoip and test_policy read
# them from $(B)/testdata (or $MERIDIAN_TESTDATA).

GEO_TESTDATA := $(B)/testdata/geoip2.mmdb $(B)/testdata/flat.mmdb

$(B)/testdata/%.mmdb: tools/mkmmdb.pl geo/testdata.mk
	@mkdir -p $(dir $@)
	perl tools/mkmmdb.pl --schema $* $@

.PHONY: testdata
testdata: $(GEO_TESTDATA)

# This file is included before the Makefile's first target: give the
# default goal back, so a bare `make` still means `all`.
.DEFAULT_GOAL :=
