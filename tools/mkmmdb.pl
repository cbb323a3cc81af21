#!/usr/bin/perl
# tools/mkmmdb.pl: writes a small MaxMind DB for the GeoIP tests.
#
#   tools/mkmmdb.pl --schema geoip2|flat OUT.mmdb
#
# Needs Debian's libmaxmind-db-writer-perl (MaxMind::DB::Writer::Tree).
# Both schemas hold the same networks in an IPv6 tree with IPv4 aliased
# (::ffff:0:0/96, 6to4 and Teredo lead to ::/96), so IPv4, IPv4-mapped and
# IPv6 lookups all work. Reserved networks are kept, so the documentation
# prefixes below can be used.
#
#   geoip2: {country: {iso_code}, continent: {code}, location: {latitude,
#            longitude}}, the shape of MaxMind's GeoIP2/GeoLite2 City.
#   flat:   {country_code} only, like the CC0 geo-whois-asn-country database.
#
# tests/unit/test_geoip.c and tests/unit/test_policy.c depend on this table;
# add rows, do not change them.
#
#   network           country  continent  latitude  longitude
#   81.2.69.0/24      GB       EU          51.50     -0.10
#   8.8.8.0/24        US       NA          37.75    -97.82
#   5.9.0.0/16        DE       EU          50.48     12.37
#   2.0.0.0/16        FR       EU          48.86      2.35
#   1.0.16.0/20       JP       AS          35.69    139.69
#   175.41.128.0/18   SG       AS           1.29    103.85
#   200.147.0.0/16    BR       SA         -23.55    -46.63
#   1.128.0.0/11      AU       OC         -33.87    151.21
#   196.25.0.0/16     ZA       AF         -26.20     28.04
#   117.192.0.0/10    IN       AS          19.08     72.88
#   2001:db8:1::/48   DE       EU          52.52     13.40
#   2a02:c7f::/32     GB       EU          51.50     -0.10
#
# Odd records, to check that the reader copes:
#
#   network           geoip2                                flat
#   198.51.100.0/24   country "gb" (lower case), nothing    country_code "gb"
#                     else: continent and centroid come
#                     from the country tables
#   203.0.113.0/24    country "XYZ" (not two letters),      country_code "ZZ"
#                     continent EU, no location             (no such country)
#   192.0.2.0/24      location with a latitude only         country_code "" (empty)
#
# Nothing else is in either database: 10.0.0.0/8, 127.0.0.0/8, ::1 and the
# rest are not found.
use strict;
use warnings;

use Getopt::Long qw(GetOptions);
use MaxMind::DB::Writer::Tree;

my @networks = (
    [ '81.2.69.0/24',    'GB', 'EU', 51.50,  -0.10 ],
    [ '8.8.8.0/24',      'US', 'NA', 37.75,  -97.82 ],
    [ '5.9.0.0/16',      'DE', 'EU', 50.48,  12.37 ],
    [ '2.0.0.0/16',      'FR', 'EU', 48.86,  2.35 ],
    [ '1.0.16.0/20',     'JP', 'AS', 35.69,  139.69 ],
    [ '175.41.128.0/18', 'SG', 'AS', 1.29,   103.85 ],
    [ '200.147.0.0/16',  'BR', 'SA', -23.55, -46.63 ],
    [ '1.128.0.0/11',    'AU', 'OC', -33.87, 151.21 ],
    [ '196.25.0.0/16',   'ZA', 'AF', -26.20, 28.04 ],
    [ '117.192.0.0/10',  'IN', 'AS', 19.08,  72.88 ],
    [ '2001:db8:1::/48', 'DE', 'EU', 52.52,  13.40 ],
    [ '2a02:c7f::/32',   'GB', 'EU', 51.50,  -0.10 ],
);

my %odd = (
    geoip2 => [
        [ '198.51.100.0/24', { country => { iso_code => 'gb' } } ],
        [ '203.0.113.0/24', { country => { iso_code => 'XYZ' }, continent => { code => 'EU' } } ],
        [ '192.0.2.0/24', { location => { latitude => 10.0 } } ],
    ],
    flat => [
        [ '198.51.100.0/24', { country_code => 'gb' } ],
        [ '203.0.113.0/24',  { country_code => 'ZZ' } ],
        [ '192.0.2.0/24',    { country_code => '' } ],
    ],
);

my %types = (
    country      => 'map',
    iso_code     => 'utf8_string',
    continent    => 'map',
    code         => 'utf8_string',
    location     => 'map',
    latitude     => 'double',
    longitude    => 'double',
    country_code => 'utf8_string',
);

sub usage {
    print STDERR "usage: $0 --schema geoip2|flat OUT.mmdb\n";
    exit 2;
}

my $schema = '';
GetOptions( 'schema=s' => \$schema ) or usage();
usage() unless @ARGV == 1 && exists $odd{$schema};
my $out = $ARGV[0];

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version               => 6,
    record_size              => 24,
    database_type            => $schema eq 'geoip2' ? 'Meridian-Test-City' : 'Meridian-Test-Country',
    languages                => ['en'],
    description              => { en => "meridian test database ($schema schema)" },
    map_key_type_callback    => sub { $types{ $_[0] } },
    alias_ipv6_to_ipv4       => 1,
    remove_reserved_networks => 0,
);

for my $n (@networks) {
    my ( $net, $cc, $continent, $lat, $lon ) = @$n;
    my $record =
        $schema eq 'geoip2'
        ? {
        country   => { iso_code => $cc },
        continent => { code     => $continent },
        location  => { latitude => $lat, longitude => $lon },
        }
        : { country_code => $cc };
    $tree->insert_network( $net, $record );
}
for my $n ( @{ $odd{$schema} } ) {
    $tree->insert_network(@$n);
}

# Written beside the target and renamed, so make never sees half a file.
my $tmp = "$out.tmp.$$";
open my $fh, '>:raw', $tmp or die "$0: cannot write $tmp: $!\n";
$tree->write_tree($fh);
close $fh or die "$0: cannot write $tmp: $!\n";
rename $tmp, $out or die "$0: cannot rename $tmp to $out: $!\n";
