#!powershell

# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

#AnsibleRequires -CSharpUtil Ansible.Basic

# The remote executor of exchange.pki (contract: docs/remote-protocol.md).
# It runs a batch of allow-listed operations with typed arguments and reports what each returned.
# It decides nothing: every decision is made on the controller. Values are data, never code: every
# cmdlet is invoked with a splatted hashtable, no script text is ever built from an argument.
# Target: Windows PowerShell 5.1 on an Exchange Server 2016 / 2019 / SE host.

Set-StrictMode -Version 2.0

$spec = @{
    options = @{
        operations = @{
            type = 'list'
            elements = 'dict'
            required = $true
            options = @{
                id = @{ type = 'str'; required = $true }
                op = @{ type = 'str'; required = $true }
                args = @{ type = 'dict'; default = @{} }
            }
        }
        secrets = @{ type = 'dict'; default = @{}; no_log = $true }
        exchange_uri = @{ type = 'str' }
        exchange_username = @{ type = 'str' }
        exchange_password = @{ type = 'str'; no_log = $true }
        exchange_authentication = @{
            type = 'str'
            default = 'Kerberos'
            choices = @('Kerberos', 'Negotiate', 'Default', 'Basic')
        }
    }
    required_together = @(, @('exchange_username', 'exchange_password'))
    supports_check_mode = $true
}

# region allow-list
# The single place that defines what may run. Kind: exchange (a cmdlet run in the Exchange session,
# the op name is the cmdlet name) or host (a local operation implemented below). Changes: the operation
# changes state (skipped in check mode; when it fails, the rest of the batch is skipped). Required: the
# parameters that must be present. Parameters: every accepted parameter and its wire type
# (string, server, list, int, bool, switch, bytes, secret, datetime; server = a string or {"$local": "server"},
# the local Exchange server resolved here). The controller keeps a mirror of this table
# (plugins/plugin_utils/_remote.py) and a unit test parses this region to keep both equal.
$OperationTable = @{
    'Get-ExchangeCertificate' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{ Server = 'server'; Thumbprint = 'string'; DomainName = 'list' }
    }
    'New-ExchangeCertificate' = @{
        Kind = 'exchange'; Changes = $true; Required = @()
        Parameters = @{
            Server = 'server'; GenerateRequest = 'switch'; BinaryEncoded = 'switch'; SubjectName = 'string'
            DomainName = 'list'; KeySize = 'int'; PrivateKeyExportable = 'bool'; FriendlyName = 'string'
            Services = 'list'; Force = 'switch'; IncludeServerFQDN = 'switch'; IncludeServerNetBIOSName = 'switch'
            IncludeAutoDiscover = 'switch'; Thumbprint = 'string'
        }
    }
    'Import-ExchangeCertificate' = @{
        Kind = 'exchange'; Changes = $true; Required = @('FileData')
        Parameters = @{
            Server = 'server'; FileData = 'bytes'; Password = 'secret'; PrivateKeyExportable = 'bool'
            FriendlyName = 'string'
        }
    }
    'Enable-ExchangeCertificate' = @{
        Kind = 'exchange'; Changes = $true; Required = @('Thumbprint', 'Services')
        Parameters = @{
            Server = 'server'; Thumbprint = 'string'; Services = 'list'; DoNotRequireSsl = 'switch'
            Force = 'switch'; NetworkServiceAllowed = 'switch'
        }
    }
    'Export-ExchangeCertificate' = @{
        Kind = 'exchange'; Changes = $false; Required = @('Thumbprint')
        Parameters = @{ Server = 'server'; Thumbprint = 'string'; Password = 'secret' }
    }
    'Remove-ExchangeCertificate' = @{
        Kind = 'exchange'; Changes = $true; Required = @('Thumbprint')
        Parameters = @{ Server = 'server'; Thumbprint = 'string' }
    }
    'Get-AuthConfig' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{}
    }
    'Set-AuthConfig' = @{
        Kind = 'exchange'; Changes = $true; Required = @()
        Parameters = @{
            NewCertificateThumbprint = 'string'; NewCertificateEffectiveDate = 'datetime'
            PublishCertificate = 'switch'; ClearPreviousCertificate = 'switch'; Force = 'switch'
        }
    }
    'Get-TransportService' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{ Identity = 'server' }
    }
    'Get-SendConnector' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{ Identity = 'string' }
    }
    'Set-SendConnector' = @{
        Kind = 'exchange'; Changes = $true; Required = @('Identity')
        Parameters = @{ Identity = 'string'; TlsCertificateName = 'string' }
    }
    'Get-ReceiveConnector' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{ Identity = 'string'; Server = 'server' }
    }
    'Set-ReceiveConnector' = @{
        Kind = 'exchange'; Changes = $true; Required = @('Identity')
        Parameters = @{ Identity = 'string'; TlsCertificateName = 'string' }
    }
    'Get-ImapSettings' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{ Server = 'server' }
    }
    'Set-ImapSettings' = @{
        Kind = 'exchange'; Changes = $true; Required = @('X509CertificateName')
        Parameters = @{ Server = 'server'; X509CertificateName = 'string' }
    }
    'Get-PopSettings' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{ Server = 'server' }
    }
    'Set-PopSettings' = @{
        Kind = 'exchange'; Changes = $true; Required = @('X509CertificateName')
        Parameters = @{ Server = 'server'; X509CertificateName = 'string' }
    }
    'Get-HybridConfiguration' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{}
    }
    'Get-ExchangeServer' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{ Identity = 'server' }
    }
    'Get-DatabaseAvailabilityGroup' = @{
        Kind = 'exchange'; Changes = $false; Required = @()
        Parameters = @{ Identity = 'string'; Status = 'switch'; Server = 'server' }
    }
    'host.info' = @{
        Kind = 'host'; Changes = $false; Required = @()
        Parameters = @{}
    }
    'host.certificates' = @{
        Kind = 'host'; Changes = $false; Required = @()
        Parameters = @{ stores = 'list'; subject_pattern = 'string'; issuer_pattern = 'string' }
    }
    'host.iis_bindings' = @{
        Kind = 'host'; Changes = $false; Required = @()
        Parameters = @{}
    }
    'host.set_iis_binding' = @{
        Kind = 'host'; Changes = $true; Required = @('site', 'binding_information', 'certificate_hash')
        Parameters = @{
            site = 'string'; binding_information = 'string'; certificate_hash = 'string'; certificate_store = 'string'
        }
    }
    'host.cluster' = @{
        Kind = 'host'; Changes = $false; Required = @()
        Parameters = @{}
    }
    'host.add_certificate' = @{
        Kind = 'host'; Changes = $true; Required = @('store', 'certificate')
        Parameters = @{ store = 'string'; certificate = 'bytes' }
    }
    'host.restart_service' = @{
        Kind = 'host'; Changes = $true; Required = @('name')
        Parameters = @{ name = 'string' }
    }
    'host.recycle_app_pool' = @{
        Kind = 'host'; Changes = $true; Required = @('name')
        Parameters = @{ name = 'string' }
    }
    'host.iis_reset' = @{
        Kind = 'host'; Changes = $true; Required = @()
        Parameters = @{}
    }
    'host.certreq_submit' = @{
        Kind = 'host'; Changes = $true; Required = @('request', 'config')
        Parameters = @{ request = 'bytes'; config = 'string'; template = 'string'; attributes = 'list' }
    }
    'host.certreq_retrieve' = @{
        Kind = 'host'; Changes = $false; Required = @('config', 'request_id')
        Parameters = @{ config = 'string'; request_id = 'int' }
    }
    'host.acme_challenge' = @{
        Kind = 'host'; Changes = $true; Required = @('action', 'token')
        Parameters = @{ action = 'string'; token = 'string'; content = 'string' }
    }
}
# endregion allow-list

# Projection of Exchange objects into result values: property -> conversion. Objects returned over
# implicit remoting are deserialized property bags (exchange-facts: "Over remote PowerShell ... objects
# can arrive with ONLY RawData"), so every conversion reads loosely typed data:
#   string  [string] of the value (ObjectId, Fqdn, SmtpX509Identifier, ServerVersion ToString forms)
#   name    the .Name of an ADObjectId (deserialized ADObjectId keeps Name), else its string form
#   enum    the enum name; a deserialized enum is an Int32 wrapped in a PSObject whose ToString is the name
#   flags   a flags enum or its comma-separated string form ("IMAP, POP, IIS, SMTP") -> list of names
#   list    each element's string form; names for ADObjectId lists via 'names'
#   oid     an Oid's FriendlyName (SignatureAlgorithm)
#   date    ISO-8601 UTC with Z;  bool / int as such;  bytes base64
$ObjectProjections = @{
    ExchangeCertificate = [ordered]@{
        Thumbprint = 'string'; Subject = 'string'; Issuer = 'string'; NotBefore = 'date'; NotAfter = 'date'
        Services = 'flags'; IISServices = 'list'; Status = 'enum'; CertificateDomains = 'list'
        HasPrivateKey = 'bool'; IsSelfSigned = 'bool'; PublicKeySize = 'int'; RootCAType = 'enum'
        SerialNumber = 'string'; FriendlyName = 'string'; PrivateKeyExportable = 'bool'; SignatureAlgorithm = 'oid'
        EnhancedKeyUsageList = 'list'; Identity = 'string'; RawData = 'bytes'
    }
    AuthConfig = [ordered]@{
        CurrentCertificateThumbprint = 'string'; PreviousCertificateThumbprint = 'string'
        NextCertificateThumbprint = 'string'; NextCertificateEffectiveDate = 'date'; ServiceName = 'string'
        Realm = 'string'
    }
    TransportService = [ordered]@{
        Name = 'string'; Fqdn = 'string'; InternalTransportCertificateThumbprint = 'string'
    }
    SendConnector = [ordered]@{
        Identity = 'string'; Name = 'string'; Enabled = 'bool'; Fqdn = 'string'; RequireTLS = 'bool'
        TlsCertificateName = 'string'; SourceTransportServers = 'names'; AddressSpaces = 'list'
        CloudServicesMailEnabled = 'bool'
    }
    ReceiveConnector = [ordered]@{
        Identity = 'string'; Name = 'string'; Server = 'name'; Enabled = 'bool'; Fqdn = 'string'
        Bindings = 'list'; TransportRole = 'enum'; TlsCertificateName = 'string'; AuthMechanism = 'flags'
    }
    ProtocolSettings = [ordered]@{
        Server = 'name'; X509CertificateName = 'string'
    }
    HybridConfiguration = [ordered]@{
        Name = 'string'; TlsCertificateName = 'string'; SendingTransportServers = 'names'
        ReceivingTransportServers = 'names'; Domains = 'list'; Features = 'list'
    }
    ExchangeServer = [ordered]@{
        Name = 'string'; Fqdn = 'string'; AdminDisplayVersion = 'string'; ServerRole = 'flags'; Site = 'name'
        Edition = 'enum'; IsExchangeTrialEdition = 'bool'
    }
    DatabaseAvailabilityGroup = [ordered]@{
        Name = 'string'; Servers = 'names'; WitnessServer = 'string'; OperationalServers = 'names'
        PrimaryActiveManager = 'name'
    }
}

# What each Exchange cmdlet returns: a projection name, optionally as a list ([]), 'FileData' (an object
# whose FileData bytes are returned as {FileData = base64}) or 'none' (the value is null).
$ExchangeResultShapes = @{
    'Get-ExchangeCertificate' = 'ExchangeCertificate[]'
    'New-ExchangeCertificate' = 'ExchangeCertificate'
    'Import-ExchangeCertificate' = 'ExchangeCertificate[]'
    'Enable-ExchangeCertificate' = 'none'
    'Export-ExchangeCertificate' = 'FileData'
    'Remove-ExchangeCertificate' = 'none'
    'Get-AuthConfig' = 'AuthConfig'
    'Set-AuthConfig' = 'none'
    'Get-TransportService' = 'TransportService[]'
    'Get-SendConnector' = 'SendConnector[]'
    'Set-SendConnector' = 'none'
    'Get-ReceiveConnector' = 'ReceiveConnector[]'
    'Set-ReceiveConnector' = 'none'
    'Get-ImapSettings' = 'ProtocolSettings[]'
    'Set-ImapSettings' = 'none'
    'Get-PopSettings' = 'ProtocolSettings[]'
    'Set-PopSettings' = 'none'
    'Get-HybridConfiguration' = 'HybridConfiguration'
    'Get-ExchangeServer' = 'ExchangeServer[]'
    'Get-DatabaseAvailabilityGroup' = 'DatabaseAvailabilityGroup[]'
}

# The converted value of {"$local": "server"}: replaced by the local Exchange server's name when the operation
# runs (Resolve-LocalExchangeServer), compared by reference.
$LocalServerMarker = New-Object -TypeName PSObject
$IsoUtcFormat = "yyyy-MM-dd'T'HH:mm:ss.fff'Z'"
$InvariantCulture = [System.Globalization.CultureInfo]::InvariantCulture
# NT AUTHORITY\NETWORK SERVICE and the groups it is always a member of (Everyone, Authenticated Users,
# BUILTIN\Users): an allow rule for any of them lets Exchange's worker processes read a private key.
$NetworkServiceSids = @('S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-32-545')

#region argument conversion

Function Get-TypedMarker {
    <#
    .SYNOPSIS
    Returns the (name, value) of a typed value marker {"$bytes"|"$secret"|"$datetime"|"$local": ...}, or $null.
    #>
    param ([AllowNull()][object]$Value)

    if ($Value -is [System.Collections.IDictionary] -and $Value.Count -eq 1) {
        foreach ($key in @($Value.Keys)) {
            if ($key -in @('$bytes', '$secret', '$datetime', '$local')) {
                return , @($key, $Value[$key])
            }
        }
    }
    return $null
}

Function Convert-TypedArgument {
    <#
    .SYNOPSIS
    Converts one wire value to the PowerShell value its declared type asks for; throws on a mismatch.
    .OUTPUTS
    A hashtable @{ Present = bool; Value = object }: a switch set to false is left out of the call.
    #>
    param (
        [Parameter(Mandatory)][string]$Type,
        [AllowNull()][object]$Value,
        [Parameter(Mandatory)][AllowEmptyCollection()][System.Collections.IDictionary]$Secrets
    )

    $marker = Get-TypedMarker -Value $Value
    $expected = @{ bytes = '$bytes'; secret = '$secret'; datetime = '$datetime' }[$Type]
    if ($expected) {
        if ($null -eq $marker -or $marker[0] -ne $expected -or $marker[1] -isnot [string]) {
            throw "expects a typed value {""$expected"": <string>}"
        }
        $text = $marker[1]
        $converted = switch ($Type) {
            'bytes' {
                try { , [System.Convert]::FromBase64String($text) }
                catch { throw "has invalid base64 data" }
            }
            'secret' {
                if (-not $Secrets.Contains($text)) {
                    throw "refers to the secret '$text' which is not in secrets"
                }
                $secure = New-Object -TypeName System.Security.SecureString
                foreach ($char in ([string]$Secrets[$text]).ToCharArray()) { $secure.AppendChar($char) }
                $secure.MakeReadOnly()
                $secure
            }
            'datetime' {
                $styles = [System.Globalization.DateTimeStyles]::RoundtripKind
                $parsed = [DateTime]::MinValue
                if (-not $text.EndsWith('Z') -or -not [DateTime]::TryParse($text, $InvariantCulture, $styles, [ref]$parsed)) {
                    throw "has an invalid date/time '$text' (ISO-8601 UTC ending in Z expected)"
                }
                $parsed.ToUniversalTime()
            }
        }
        return @{ Present = $true; Value = $converted }
    }

    if ($Type -eq 'server') {
        if ($null -ne $marker) {
            if ($marker[0] -ne '$local' -or $marker[1] -ne 'server') { throw "expects a string or {""`$local"": ""server""}" }
            return @{ Present = $true; Value = $LocalServerMarker }
        }
        if ($null -ne $Value -and $Value -isnot [string]) { throw "expects a string or {""`$local"": ""server""}" }
        return @{ Present = $true; Value = $Value }
    }
    if ($null -ne $marker) {
        throw "does not accept a typed value $($marker[0])"
    }

    switch ($Type) {
        'switch' {
            if ($Value -isnot [bool]) { throw "expects a boolean (switch)" }
            # A switch is present when true; -Switch:$false is the same as leaving it out.
            return @{ Present = $Value; Value = [System.Management.Automation.SwitchParameter]::Present }
        }
        'bool' {
            if ($Value -isnot [bool]) { throw "expects a boolean" }
            return @{ Present = $true; Value = $Value }
        }
        'int' {
            if ($Value -isnot [int] -and $Value -isnot [long]) { throw "expects an integer" }
            return @{ Present = $true; Value = [int]$Value }
        }
        'string' {
            if ($null -ne $Value -and $Value -isnot [string]) { throw "expects a string" }
            return @{ Present = $true; Value = $Value }
        }
        'list' {
            if ($null -eq $Value) { return @{ Present = $true; Value = $null } }
            if ($Value -isnot [System.Collections.IList]) { throw "expects a list of strings" }
            $items = @($Value)
            if (@($items | Where-Object { $_ -isnot [string] }).Count -gt 0) {
                throw "expects a list of strings"
            }
            # An empty list must stay an empty array: New-ExchangeCertificate -DomainName @() is how the
            # Auth certificate is created without SANs (exchange-facts: Auth certificate).
            return @{ Present = $true; Value = [string[]]$items }
        }
    }
    throw "has the unknown declared type '$Type'"
}

Function ConvertTo-OperationParameter {
    <#
    .SYNOPSIS
    Validates one operation against the allow-list and returns its parameters as a splattable hashtable.
    Any problem is an argument error of the whole module (docs/remote-protocol.md, "Result").
    #>
    param (
        [Parameter(Mandatory)][Ansible.Basic.AnsibleModule]$Module,
        [Parameter(Mandatory)][System.Collections.IDictionary]$Operation
    )

    $id = $Operation.id
    $opName = $Operation.op
    if (-not $OperationTable.ContainsKey($opName)) {
        $Module.FailJson("operation '$id': unknown op '$opName'")
    }
    $definition = $OperationTable[$opName]
    $arguments = if ($null -eq $Operation.args) { @{} } else { $Operation.args }

    $parameters = @{}
    foreach ($name in @($arguments.Keys)) {
        if (-not $definition.Parameters.ContainsKey($name)) {
            $Module.FailJson("operation '$id' ($opName): unknown parameter '$name'")
        }
        try {
            $converted = Convert-TypedArgument -Type $definition.Parameters[$name] -Value $arguments[$name] -Secrets $Module.Params.secrets
        }
        catch {
            $Module.FailJson("operation '$id' ($opName): parameter '$name' $($_.Exception.Message)")
        }
        if ($converted.Present) {
            $parameters[$name] = $converted.Value
        }
    }
    foreach ($name in $definition.Required) {
        if (-not $arguments.Contains($name)) {
            $Module.FailJson("operation '$id' ($opName): missing required parameter '$name'")
        }
    }
    return $parameters
}

#endregion

#region result conversion

Function Get-PropertyValue {
    <#
    .SYNOPSIS
    The value of a property, or $null when the object does not have it (strict-mode safe; deserialized
    objects only carry the properties that were serialized).
    #>
    param (
        [AllowNull()][object]$InputObject,
        [Parameter(Mandatory)][string]$Name
    )

    if ($null -eq $InputObject) { return $null }
    $property = $InputObject.PSObject.Properties[$Name]
    # The unary comma keeps an array value (RawData byte[], a list) from being unrolled.
    if ($property) { return , $property.Value }
    return $null
}

Function ConvertTo-IsoUtc {
    param ([AllowNull()][object]$Value)

    if ($null -eq $Value) { return $null }
    if ($Value -isnot [DateTime]) {
        # A deserialized nullable DateTime can arrive as its string form.
        $Value = [DateTime]::Parse([string]$Value, $InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind)
    }
    return $Value.ToUniversalTime().ToString($IsoUtcFormat, $InvariantCulture)
}

Function ConvertTo-Base64Value {
    <#
    .SYNOPSIS
    Returns bytes as base64. Over implicit remoting a byte[] property normally survives deserialization,
    but a RawData/FileData that was serialized as its string form arrives already base64 encoded.
    #>
    param ([AllowNull()][object]$Value)

    if ($null -eq $Value) { return $null }
    if ($Value -is [byte[]]) { return [System.Convert]::ToBase64String($Value) }
    if ($Value -is [string]) {
        $text = ($Value -replace '-----[A-Z0-9 ]+-----', '') -replace '\s', ''
        [void][System.Convert]::FromBase64String($text)  # throws when it is not base64
        return $text
    }
    if ($Value -is [System.Collections.IEnumerable]) {
        return [System.Convert]::ToBase64String([byte[]]@($Value))
    }
    throw "cannot convert a value of type $($Value.GetType().FullName) to bytes"
}

Function ConvertTo-FlagList {
    <#
    .SYNOPSIS
    Flags (AllowedServices, ServerRole, AuthMechanism) -> list of names. A live enum, a deserialized one
    (whose base object is an Int32, so never cast it) and the string "IMAP, POP, IIS, SMTP" all work
    through their string form. 'None' means the empty list.
    #>
    param ([AllowNull()][object]$Value)

    $names = [System.Collections.Generic.List[string]]@()
    if ($null -eq $Value) { return , $names }
    foreach ($part in @($Value)) {
        foreach ($name in ($part.ToString() -split ',')) {
            $trimmed = $name.Trim()
            if ($trimmed -and $trimmed -ne 'None' -and -not $names.Contains($trimmed)) {
                $names.Add($trimmed)
            }
        }
    }
    return , $names
}

Function ConvertTo-NameValue {
    param ([AllowNull()][object]$Value)

    if ($null -eq $Value) { return $null }
    $name = Get-PropertyValue -InputObject $Value -Name 'Name'
    if ($name) { return [string]$name }
    return $Value.ToString()
}

Function ConvertTo-ProjectedValue {
    param (
        [Parameter(Mandatory)][string]$Conversion,
        [AllowNull()][object]$Value
    )

    if ($null -eq $Value) {
        if ($Conversion -in @('flags', 'list', 'names')) { return , @() }
        return $null
    }
    switch ($Conversion) {
        'string' { return $Value.ToString() }
        'name' { return ConvertTo-NameValue -Value $Value }
        'enum' { return $Value.ToString() }
        'flags' { return , (ConvertTo-FlagList -Value $Value).ToArray() }
        'list' { return , @(foreach ($item in @($Value)) { if ($null -ne $item) { $item.ToString() } }) }
        'names' { return , @(foreach ($item in @($Value)) { if ($null -ne $item) { ConvertTo-NameValue -Value $item } }) }
        'oid' {
            $friendlyName = Get-PropertyValue -InputObject $Value -Name 'FriendlyName'
            if ($friendlyName) { return [string]$friendlyName }
            return $Value.ToString()
        }
        'date' { return ConvertTo-IsoUtc -Value $Value }
        'bool' { return [bool]$Value }
        'int' { return [int]$Value.ToString() }
        'bytes' { return ConvertTo-Base64Value -Value $Value }
    }
    throw "unknown projection conversion '$Conversion'"
}

Function ConvertTo-ProjectedObject {
    <#
    .SYNOPSIS
    Projects an Exchange object on the documented properties. A missing property is null: objects that
    arrive RawData-only carry nothing else (exchange-facts: Get-ExchangeCertificate).
    #>
    param (
        [Parameter(Mandatory)][string]$Projection,
        [AllowNull()][object]$InputObject
    )

    if ($null -eq $InputObject) { return $null }
    $record = [ordered]@{}
    foreach ($entry in $ObjectProjections[$Projection].GetEnumerator()) {
        $raw = Get-PropertyValue -InputObject $InputObject -Name $entry.Key
        $record[$entry.Key] = ConvertTo-ProjectedValue -Conversion $entry.Value -Value $raw
    }
    return $record
}

Function ConvertTo-FileDataValue {
    <#
    .SYNOPSIS
    Returns @{FileData = base64} from the output of -BinaryEncoded (an object whose FileData is byte[]),
    or from the base64 text a cmdlet returns without -BinaryEncoded.
    #>
    param ([AllowNull()][object[]]$Output)

    $first = @($Output | Where-Object { $null -ne $_ }) | Select-Object -First 1
    if ($null -eq $first) { throw "the cmdlet returned no data" }
    $data = if ($first.PSObject.Properties['FileData']) { Get-PropertyValue -InputObject $first -Name 'FileData' } else { $first }
    return @{ FileData = ConvertTo-Base64Value -Value $data }
}

Function ConvertTo-ExchangeResultValue {
    param (
        [Parameter(Mandatory)][string]$Op,
        [AllowNull()][object[]]$Output
    )

    $shape = $ExchangeResultShapes[$Op]
    if ($shape -eq 'none') { return $null }
    if ($shape -eq 'FileData') { return ConvertTo-FileDataValue -Output $Output }
    $objects = @($Output | Where-Object { $null -ne $_ })
    if ($shape.EndsWith('[]')) {
        $projection = $shape.Substring(0, $shape.Length - 2)
        return , @(foreach ($object in $objects) { ConvertTo-ProjectedObject -Projection $projection -InputObject $object })
    }
    if ($objects.Count -eq 0) { return $null }
    return ConvertTo-ProjectedObject -Projection $shape -InputObject $objects[0]
}

Function Get-ErrorRecordInfo {
    <#
    .SYNOPSIS
    The protocol's error object. Errors from the Exchange session are RemotingErrorRecords that keep the
    server-side CategoryInfo and FullyQualifiedErrorId.
    #>
    param ([Parameter(Mandatory)][System.Management.Automation.ErrorRecord]$ErrorRecord)

    $message = if ($ErrorRecord.ErrorDetails -and $ErrorRecord.ErrorDetails.Message) {
        $ErrorRecord.ErrorDetails.Message
    }
    else {
        $ErrorRecord.Exception.Message
    }
    $info = $ErrorRecord.CategoryInfo
    return [ordered]@{
        message = $message
        category = $info.Category.ToString()
        fully_qualified_error_id = $ErrorRecord.FullyQualifiedErrorId
        reason = if ($info.Reason) { $info.Reason } else { $null }
        target = if ($info.TargetName) { $info.TargetName } else { $null }
    }
}

#endregion

#region Exchange session

Function Get-LocalFqdn {
    <#
    .SYNOPSIS
    The host's DNS name from the TCP/IP registry settings (no DNS round trip), else from a DNS lookup.
    #>
    $tcpip = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters' -ErrorAction SilentlyContinue
    $hostName = Get-PropertyValue -InputObject $tcpip -Name 'Hostname'
    $domain = Get-PropertyValue -InputObject $tcpip -Name 'Domain'
    if (-not $domain) { $domain = Get-PropertyValue -InputObject $tcpip -Name 'NV Domain' }
    if ($hostName -and $domain) {
        return "$hostName.$domain".ToLowerInvariant()
    }
    return [System.Net.Dns]::GetHostEntry([System.Net.Dns]::GetHostName()).HostName.ToLowerInvariant()
}

Function Open-ExchangeSession {
    <#
    .SYNOPSIS
    Opens the Exchange management session by implicit remoting and imports only the allow-listed cmdlets.
    .DESCRIPTION
    Implicit remoting to http://<fqdn>/PowerShell/ (configuration Microsoft.Exchange) is the supported way;
    Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn bypasses RBAC and is NOT supported, so it
    is never used (exchange-facts: "Running Exchange cmdlets from a WinRM session"). From a WinRM session
    the connection's own identity cannot authenticate onward without CredSSP, Kerberos delegation or
    become (double hop): the optional explicit credential covers that case.
    Import-PSSession writes its proxy module under $env:TEMP and loads it as a script module; Ansible runs
    the module with -ExecutionPolicy Unrestricted, so AllSigned machine policies do not block it.
    #>
    param (
        [Parameter(Mandatory)][System.Collections.IDictionary]$Context,
        [Parameter(Mandatory)][Ansible.Basic.AnsibleModule]$Module
    )

    $Context.Attempted = $true
    $uri = $Module.Params.exchange_uri
    if (-not $uri) { $uri = "http://$(Get-LocalFqdn)/PowerShell/" }
    $Context.Uri = $uri

    $sessionParams = @{
        ConfigurationName = 'Microsoft.Exchange'
        ConnectionUri = $uri
        Authentication = $Module.Params.exchange_authentication
        ErrorAction = 'Stop'
    }
    if ($Module.Params.exchange_username) {
        $password = ConvertTo-SecureString -String $Module.Params.exchange_password -AsPlainText -Force
        $sessionParams.Credential = New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList @(
            $Module.Params.exchange_username, $password)
    }
    $Context.Session = New-PSSession @sessionParams
    $Context.Opened = $true

    $commandNames = @($OperationTable.Keys | Where-Object { $OperationTable[$_].Kind -eq 'exchange' })
    $importParams = @{
        Session = $Context.Session
        CommandName = $commandNames
        DisableNameChecking = $true
        AllowClobber = $true
        ErrorAction = 'Stop'
    }
    $Context.ProxyModule = Import-PSSession @importParams
}

Function Get-ExchangeCommand {
    <#
    .SYNOPSIS
    Returns the proxy command of an allow-listed cmdlet, opening the session on first use; throws the
    session's error record for every later operation when the session could not be opened.
    #>
    param (
        [Parameter(Mandatory)][System.Collections.IDictionary]$Context,
        [Parameter(Mandatory)][Ansible.Basic.AnsibleModule]$Module,
        [Parameter(Mandatory)][string]$Name
    )

    if (-not $Context.Attempted) {
        try {
            Open-ExchangeSession -Context $Context -Module $Module
        }
        catch {
            $Context.OpenError = $_
        }
    }
    if ($Context.OpenError) {
        throw $Context.OpenError
    }
    # Only the proxy exported by our own implicit-remoting module, whatever scope it was imported into: a
    # local command of the same name (even an Exchange snap-in cmdlet) must never be picked up.
    $command = $Context.ProxyModule.ExportedCommands[$Name]
    if ($null -eq $command) {
        $message = "The Exchange session does not offer the cmdlet '$Name' (missing from the endpoint or not granted by RBAC)."
        throw [System.Management.Automation.CommandNotFoundException]$message
    }
    return $command
}

Function Close-ExchangeSession {
    param ([Parameter(Mandatory)][System.Collections.IDictionary]$Context)

    if ($Context.ProxyModule) {
        Remove-Module -ModuleInfo $Context.ProxyModule -Force -ErrorAction SilentlyContinue
    }
    if ($Context.Session) {
        try {
            Remove-PSSession -Session $Context.Session -ErrorAction Stop
            $Context.Removed = $true
        }
        catch {
            # Reported as removed = false; the session times out on the server side.
            $Context.Removed = $false
        }
    }
}

Function Resolve-LocalExchangeServer {
    <#
    .SYNOPSIS
    The Name of the Exchange server this host is, resolved once per batch the way Exchange itself names it:
    Get-ExchangeServer -Identity <computer name> (the NetBIOS name is the server's Name), else the one server
    whose Fqdn is this host's DNS name. The inventory name plays no part: it is not always the server's name.
    #>
    param (
        [Parameter(Mandatory)][System.Collections.IDictionary]$Context,
        [Parameter(Mandatory)][Ansible.Basic.AnsibleModule]$Module
    )

    if ($Context.LocalServer) { return $Context.LocalServer }
    $getServer = Get-ExchangeCommand -Context $Context -Module $Module -Name 'Get-ExchangeServer'
    $found = $null
    try {
        $found = @(& $getServer -Identity $env:COMPUTERNAME -ErrorAction Stop) | Select-Object -First 1
    }
    catch {
        $found = $null
    }
    if ($null -eq $found) {
        $fqdn = Get-LocalFqdn
        $found = @(& $getServer -ErrorAction Stop | Where-Object { [string](Get-PropertyValue -InputObject $_ -Name 'Fqdn') -eq $fqdn }) |
            Select-Object -First 1
    }
    if ($null -eq $found) {
        $message = "The local computer '$env:COMPUTERNAME' is not an Exchange server of this organization (no server has that name or its FQDN)."
        throw [System.Management.Automation.ItemNotFoundException]$message
    }
    $Context.LocalServer = [string](Get-PropertyValue -InputObject $found -Name 'Name')
    return $Context.LocalServer
}

Function Invoke-ExchangeOperation {
    <#
    .SYNOPSIS
    Runs one allow-listed Exchange cmdlet through its proxy and returns @{ Value = <projected result> }
    (a holder, so that PowerShell never unrolls a list result on the way out).
    #>
    param (
        [Parameter(Mandatory)][System.Collections.IDictionary]$Context,
        [Parameter(Mandatory)][Ansible.Basic.AnsibleModule]$Module,
        [Parameter(Mandatory)][string]$Op,
        [Parameter(Mandatory)][AllowEmptyCollection()][hashtable]$Parameters
    )

    $command = Get-ExchangeCommand -Context $Context -Module $Module -Name $Op
    $callParams = @{} + $Parameters
    foreach ($name in @($callParams.Keys)) {
        if ([object]::ReferenceEquals($callParams[$name], $LocalServerMarker)) {
            $callParams[$name] = Resolve-LocalExchangeServer -Context $Context -Module $Module
        }
    }
    $callParams.ErrorAction = 'Stop'
    # Force answers Exchange's own prompts (e.g. "Overwrite the existing default SMTP certificate?",
    # exchange-facts: New/Enable-ExchangeCertificate); in this non-interactive host any other prompt
    # fails with Exchange's error, which is reported as the operation's error.
    if ($callParams.ContainsKey('Force')) {
        $callParams.Confirm = $false
    }

    switch ($Op) {
        'New-ExchangeCertificate' {
            if ($callParams.ContainsKey('GenerateRequest')) {
                # -RequestFile was removed in the 2022 H1 CUs: -BinaryEncoded returns the DER request
                # as .FileData (exchange-facts: New-ExchangeCertificate).
                $callParams.BinaryEncoded = [System.Management.Automation.SwitchParameter]::Present
            }
            if ($callParams.ContainsKey('Thumbprint')) {
                # New-ExchangeCertificate has no -Thumbprint: a renewal pipes the existing certificate in
                # (Get-ExchangeCertificate -Thumbprint X | New-ExchangeCertificate).
                $getParams = @{ Thumbprint = $callParams.Thumbprint; ErrorAction = 'Stop' }
                if ($callParams.ContainsKey('Server')) { $getParams.Server = $callParams.Server }
                $callParams.Remove('Thumbprint')
                $getCommand = Get-ExchangeCommand -Context $Context -Module $Module -Name 'Get-ExchangeCertificate'
                $existing = & $getCommand @getParams
                $output = $existing | & $command @callParams
            }
            else {
                $output = & $command @callParams
            }
            if ($callParams.ContainsKey('GenerateRequest')) {
                return @{ Value = ConvertTo-FileDataValue -Output $output }
            }
            $value = ConvertTo-ExchangeResultValue -Op $Op -Output $output
            return @{ Value = $value }
        }
        'Export-ExchangeCertificate' {
            $callParams.BinaryEncoded = [System.Management.Automation.SwitchParameter]::Present
        }
        'Get-DatabaseAvailabilityGroup' {
            if ($callParams.ContainsKey('Server')) {
                # The cmdlet has no -Server: keep the DAGs the server is a member of, so that one server's
                # answer does not list every DAG of the organisation.
                $member = [string]$callParams.Server
                $callParams.Remove('Server')
                $all = & $command @callParams
                $output = @($all | Where-Object {
                        (ConvertTo-ProjectedValue -Conversion 'names' -Value (Get-PropertyValue -InputObject $_ -Name 'Servers')) -contains $member
                    })
                return @{ Value = ConvertTo-ExchangeResultValue -Op $Op -Output $output }
            }
        }
        'Remove-ExchangeCertificate' {
            # Remove asks "Are you sure you want to perform this action?" (ConfirmImpact High), which fails
            # in a non-interactive host; the controller has already decided the removal is safe.
            $callParams.Confirm = $false
        }
    }
    $output = & $command @callParams
    $value = ConvertTo-ExchangeResultValue -Op $Op -Output $output
    return @{ Value = $value }
}

#endregion

#region host operations

Function Get-HostInfo {
    $computerSystem = Get-CimInstance -ClassName Win32_ComputerSystem -ErrorAction Stop
    $installPath = $env:ExchangeInstallPath
    if (-not $installPath) {
        $setupKey = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -ErrorAction SilentlyContinue
        $installPath = Get-PropertyValue -InputObject $setupKey -Name 'MsiInstallPath'
    }
    $exchangeVersion = $null
    if ($installPath) {
        $exSetup = Join-Path -Path $installPath -ChildPath 'Bin\ExSetup.exe'
        if (Test-Path -LiteralPath $exSetup) {
            # The numeric parts, not the FileVersion string ("15.02.1544.004"): 15.2.1544.4 as the
            # build tables (and Get-ExchangeServer's AdminDisplayVersion) write it.
            $fileInfo = [System.Diagnostics.FileVersionInfo]::GetVersionInfo($exSetup)
            $exchangeVersion = '{0}.{1}.{2}.{3}' -f $fileInfo.FileMajorPart, $fileInfo.FileMinorPart, $fileInfo.FileBuildPart, $fileInfo.FilePrivatePart
        }
    }
    return [ordered]@{
        ComputerName = $env:COMPUTERNAME
        Fqdn = Get-LocalFqdn
        Domain = $computerSystem.Domain
        OSVersion = [System.Environment]::OSVersion.Version.ToString()
        PowerShellVersion = $PSVersionTable.PSVersion.ToString()
        ExchangeInstallPath = if ($installPath) { $installPath } else { $null }
        ExchangeVersion = $exchangeVersion
        UtcNow = ConvertTo-IsoUtc -Value ([DateTime]::UtcNow)
    }
}

Function Get-StoreNameList {
    <#
    .SYNOPSIS
    Expands "*" to every LocalMachine store: the well-known StoreName values plus every store registered
    under HKLM:\SOFTWARE\Microsoft\SystemCertificates (custom stores such as the cluster's PKU2U store,
    exchange-facts: CLIUSR and the failover-cluster certificates).
    #>
    param ([string[]]$Stores)

    if (-not $Stores -or $Stores.Count -eq 0) { return , @('My') }
    if ($Stores -notcontains '*') { return , $Stores }
    $names = [System.Collections.Generic.List[string]]@()
    $registered = Get-ChildItem -LiteralPath 'HKLM:\SOFTWARE\Microsoft\SystemCertificates' -ErrorAction SilentlyContinue |
        ForEach-Object { $_.PSChildName }
    foreach ($name in @([Enum]::GetNames([System.Security.Cryptography.X509Certificates.StoreName])) + @($registered)) {
        if ($name -and -not ($names | Where-Object { $_ -eq $name })) { $names.Add($name) }
    }
    return , $names.ToArray()
}

Function Test-NetworkServiceRead {
    <#
    .SYNOPSIS
    True when the ACL of a private key file grants read to NETWORK SERVICE (directly or through a group it
    always belongs to) and denies it nothing; $null when the file cannot be found or read.
    #>
    param ([AllowNull()][string]$Path)

    if (-not $Path -or -not (Test-Path -LiteralPath $Path)) { return $null }
    try {
        $acl = Get-Acl -LiteralPath $Path -ErrorAction Stop
    }
    catch {
        return $null
    }
    $readData = [int][System.Security.AccessControl.FileSystemRights]::ReadData
    $allowed = $false
    foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        if ($NetworkServiceSids -notcontains $rule.IdentityReference.Value) { continue }
        if (([int]$rule.FileSystemRights -band $readData) -eq 0) { continue }
        if ($rule.AccessControlType -eq [System.Security.AccessControl.AccessControlType]::Deny) { return $false }
        $allowed = $true
    }
    return $allowed
}

Function Get-PrivateKeyInfo {
    <#
    .SYNOPSIS
    Key provider (csp | cng), provider name, exportability and NETWORK SERVICE read access of a
    certificate's private key; every field is $null when it cannot be known.
    .DESCRIPTION
    GetRSAPrivateKey / GetECDsaPrivateKey are used instead of $cert.PrivateKey: on .NET Framework the
    PrivateKey property throws "Invalid provider type specified" for CNG keys. An RSACng key is CNG; an
    RSACryptoServiceProvider key is a legacy CSP key (the Auth certificate must have one, exchange-facts:
    Auth certificate). Key files: CSP machine keys in %ProgramData%\Microsoft\Crypto\RSA\MachineKeys,
    CNG machine keys in %ProgramData%\Microsoft\Crypto\Keys.
    #>
    param ([Parameter(Mandatory)][System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate)

    $info = [ordered]@{ KeyProvider = $null; KeyProviderName = $null; KeyExportable = $null; NetworkServiceCanReadKey = $null }
    if (-not $Certificate.HasPrivateKey) { return $info }
    $key = $null
    try {
        $key = [System.Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Certificate)
        if ($null -eq $key) {
            $key = [System.Security.Cryptography.X509Certificates.ECDsaCertificateExtensions]::GetECDsaPrivateKey($Certificate)
        }
    }
    catch {
        # Access denied to the key container or a broken key link: nothing more can be known.
        return $info
    }
    if ($null -eq $key) { return $info }
    try {
        $keyDirectory = Join-Path -Path $env:ProgramData -ChildPath 'Microsoft\Crypto'
        if ($key -is [System.Security.Cryptography.RSACryptoServiceProvider]) {
            $container = $key.CspKeyContainerInfo
            $info.KeyProvider = 'csp'
            $info.KeyProviderName = $container.ProviderName
            $info.KeyExportable = $container.Exportable
            $keyFile = Join-Path -Path $keyDirectory -ChildPath "RSA\MachineKeys\$($container.UniqueKeyContainerName)"
            $info.NetworkServiceCanReadKey = Test-NetworkServiceRead -Path $keyFile
        }
        elseif ($key.PSObject.Properties['Key'] -and $key.Key -is [System.Security.Cryptography.CngKey]) {
            $cngKey = $key.Key
            $exportFlags = [System.Security.Cryptography.CngExportPolicies]::AllowExport -bor [System.Security.Cryptography.CngExportPolicies]::AllowPlaintextExport
            $info.KeyProvider = 'cng'
            $info.KeyProviderName = $cngKey.Provider.Provider
            $info.KeyExportable = ([int]$cngKey.ExportPolicy -band [int]$exportFlags) -ne 0
            $keyFile = Join-Path -Path $keyDirectory -ChildPath "Keys\$($cngKey.UniqueName)"
            $info.NetworkServiceCanReadKey = Test-NetworkServiceRead -Path $keyFile
        }
    }
    catch {
        # Reading key properties can fail for keys on smart cards / HSMs; keep what is known.
        $null = $_
    }
    finally {
        $key.Dispose()
    }
    return $info
}

Function ConvertTo-CertificateRecord {
    param (
        [Parameter(Mandatory)][string]$Store,
        [Parameter(Mandatory)][System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate
    )

    $record = [ordered]@{
        Store = $Store
        Thumbprint = $Certificate.Thumbprint
        FriendlyName = if ($Certificate.FriendlyName) { $Certificate.FriendlyName } else { $null }
        HasPrivateKey = $Certificate.HasPrivateKey
    }
    foreach ($entry in (Get-PrivateKeyInfo -Certificate $Certificate).GetEnumerator()) {
        $record[$entry.Key] = $entry.Value
    }
    $record.Archived = $Certificate.Archived
    $record.RawData = [System.Convert]::ToBase64String($Certificate.RawData)
    return $record
}

Function Test-CertificateSelected {
    <#
    .SYNOPSIS
    Whether host.certificates lists a certificate: every one without patterns, else those whose Subject
    matches subject_pattern or whose Issuer matches issuer_pattern (case-insensitive regexes).
    #>
    param (
        [Parameter(Mandatory)][System.Security.Cryptography.X509Certificates.X509Certificate2]$Certificate,
        [AllowNull()][string]$SubjectPattern,
        [AllowNull()][string]$IssuerPattern
    )

    if (-not $SubjectPattern -and -not $IssuerPattern) { return $true }
    if ($SubjectPattern -and $Certificate.Subject -match $SubjectPattern) { return $true }
    return [bool]($IssuerPattern -and $Certificate.Issuer -match $IssuerPattern)
}

Function Get-StoreCertificateList {
    param (
        [string[]]$Stores,
        [AllowNull()][string]$SubjectPattern,
        [AllowNull()][string]$IssuerPattern
    )

    $records = [System.Collections.Generic.List[object]]@()
    $flags = [System.Security.Cryptography.X509Certificates.OpenFlags]'ReadOnly, OpenExistingOnly, IncludeArchived'
    $location = [System.Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine
    foreach ($storeName in (Get-StoreNameList -Stores $Stores)) {
        $store = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Store -ArgumentList $storeName, $location
        try {
            $store.Open($flags)
        }
        catch {
            # OpenExistingOnly: a store that does not exist on this host is simply empty.
            continue
        }
        try {
            foreach ($certificate in $store.Certificates) {
                if (-not (Test-CertificateSelected -Certificate $certificate -SubjectPattern $SubjectPattern -IssuerPattern $IssuerPattern)) { continue }
                $records.Add((ConvertTo-CertificateRecord -Store $storeName -Certificate $certificate))
            }
        }
        finally {
            $store.Close()
        }
    }
    return , $records.ToArray()
}

Function Import-WebAdministrationModule {
    Import-Module -Name WebAdministration -ErrorAction Stop -Verbose:$false
}

Function Get-IisBindingList {
    Import-WebAdministrationModule
    $bindings = [System.Collections.Generic.List[object]]@()
    foreach ($site in @(Get-Website)) {
        foreach ($binding in @($site.bindings.Collection)) {
            if ($binding.protocol -ne 'https') { continue }
            $parts = ([string]$binding.bindingInformation).Split(':')
            $bindings.Add([ordered]@{
                    Site = $site.Name
                    Protocol = $binding.protocol
                    BindingInformation = $binding.bindingInformation
                    HostHeader = if ($parts.Count -ge 3 -and $parts[2]) { $parts[2] } else { $null }
                    CertificateHash = if ($binding.certificateHash) { ([string]$binding.certificateHash).ToUpperInvariant() } else { $null }
                    CertificateStoreName = if ($binding.certificateStoreName) { $binding.certificateStoreName } else { $null }
                    SslFlags = [int]$binding.sslFlags
                })
        }
    }
    return , $bindings.ToArray()
}

Function Set-IisBindingCertificate {
    param (
        [Parameter(Mandatory)][string]$Site,
        [Parameter(Mandatory)][string]$BindingInformation,
        [Parameter(Mandatory)][string]$CertificateHash,
        [AllowNull()][string]$CertificateStore
    )

    Import-WebAdministrationModule
    $store = if ($CertificateStore) { $CertificateStore } else { 'My' }
    $binding = @(Get-WebBinding -Name $Site -Protocol https | Where-Object { $_.bindingInformation -eq $BindingInformation })
    if ($binding.Count -eq 0) {
        throw [System.Management.Automation.ItemNotFoundException]"The site '$Site' has no https binding '$BindingInformation'."
    }
    # AddSslCertificate replaces the http.sys SSL registration of the binding in one step, so the endpoint
    # never serves without a certificate (DESIGN safety invariant 2).
    $binding[0].AddSslCertificate($CertificateHash, $store)
}

Function Get-ClusterFact {
    # A DAG member is a failover-cluster node (exchange-facts: CLIUSR ...); without the cluster service
    # this host is not a node.
    if (-not (Get-Service -Name ClusSvc -ErrorAction SilentlyContinue)) { return $null }
    if (-not (Get-Module -ListAvailable -Name FailoverClusters)) { return $null }
    Import-Module -Name FailoverClusters -ErrorAction Stop -Verbose:$false
    $cluster = Get-Cluster -ErrorAction Stop
    $nodes = @(foreach ($node in @(Get-ClusterNode -ErrorAction Stop)) {
            [ordered]@{ Name = $node.Name; State = $node.State.ToString() }
        })
    return [ordered]@{
        Name = $cluster.Name
        Nodes = $nodes
        CliusrAccount = Get-CliusrAccount
    }
}

Function Add-StoreCertificate {
    <#
    .SYNOPSIS
    Adds a certificate (DER, no key) to LocalMachine\CA or LocalMachine\Root unless it is there already.
    Returns the holder of Invoke-HostOperation: Changed is $false when the store already held it.
    #>
    param (
        [Parameter(Mandatory)][string]$Store,
        [Parameter(Mandatory)][byte[]]$Certificate
    )

    if (@('CA', 'Root') -cnotcontains $Store) {
        throw "host.add_certificate: store must be 'CA' or 'Root', got '$Store'"
    }
    $x509 = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList @(, $Certificate)
    $location = [System.Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine
    $target = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Store -ArgumentList $Store, $location
    $target.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadWrite)
    try {
        $findType = [System.Security.Cryptography.X509Certificates.X509FindType]::FindByThumbprint
        $present = $target.Certificates.Find($findType, $x509.Thumbprint, $false).Count -gt 0
        if (-not $present) { $target.Add($x509) }
    }
    finally {
        $target.Close()
    }
    return @{ Value = @{ Thumbprint = $x509.Thumbprint; Store = $Store; Added = (-not $present) }; Changed = (-not $present) }
}

Function Set-AcmeChallenge {
    <#
    .SYNOPSIS
    Writes (add) or removes (remove) an ACME http-01 token file under the Default Web Site's
    .well-known\acme-challenge directory (exchange-facts: "ACME http-01 on Exchange"). The token must be base64url
    and the content an ACME key authorization (token.thumbprint), so no other path or text can be written.
    IIS serves extensionless files only with a MIME type for them: a web.config with one is written into the
    challenge directory when it has none. Returns the holder of Invoke-HostOperation.
    #>
    param (
        [Parameter(Mandatory)][string]$Action,
        [Parameter(Mandatory)][string]$Token,
        [AllowNull()][AllowEmptyString()][string]$Content
    )

    if (@('add', 'remove') -cnotcontains $Action) {
        throw "host.acme_challenge: action must be 'add' or 'remove', got '$Action'"
    }
    if ($Token -cnotmatch '^[A-Za-z0-9_-]{1,256}$') {
        throw 'host.acme_challenge: token must be base64url (A-Z, a-z, 0-9, - and _), 1 to 256 characters'
    }
    if ($Action -ceq 'add' -and $Content -cnotmatch '^[A-Za-z0-9_.-]{1,1024}$') {
        throw 'host.acme_challenge: content must be an ACME key authorization (base64url and dots, 1 to 1024 characters)'
    }
    Import-WebAdministrationModule
    $site = Get-Website -Name 'Default Web Site' -ErrorAction Stop
    if ($null -eq $site) { throw "host.acme_challenge: IIS has no site named 'Default Web Site'" }
    $root = [System.Environment]::ExpandEnvironmentVariables([string]$site.physicalPath)
    $directory = [System.IO.Path]::Combine($root, '.well-known', 'acme-challenge')
    $path = [System.IO.Path]::Combine($directory, $Token)
    $utf8 = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
    if ($Action -ceq 'remove') {
        $exists = [System.IO.File]::Exists($path)
        if ($exists) { [System.IO.File]::Delete($path) }
        return @{ Value = @{ Path = $path; Present = $false }; Changed = $exists }
    }
    $present = [System.IO.File]::Exists($path) -and ([System.IO.File]::ReadAllText($path, $utf8) -ceq $Content)
    if (-not $present) {
        $null = [System.IO.Directory]::CreateDirectory($directory)
        $webConfig = [System.IO.Path]::Combine($directory, 'web.config')
        if (-not [System.IO.File]::Exists($webConfig)) {
            $mime = '<?xml version="1.0" encoding="UTF-8"?><configuration><system.webServer><staticContent>' +
                '<remove fileExtension="." /><mimeMap fileExtension="." mimeType="text/plain" />' +
                '</staticContent></system.webServer></configuration>'
            [System.IO.File]::WriteAllText($webConfig, $mime, $utf8)
        }
        [System.IO.File]::WriteAllText($path, $Content, $utf8)
    }
    return @{ Value = @{ Path = $path; Present = $true }; Changed = (-not $present) }
}

Function Get-CliusrAccount {
    <#
    .SYNOPSIS
    The local CLIUSR account of the cluster service (exchange-facts: CLIUSR), $null when unknowable.
    #>
    if (Get-Command -Name Get-LocalUser -ErrorAction SilentlyContinue) {
        $user = Get-LocalUser -Name CLIUSR -ErrorAction SilentlyContinue
        if ($null -eq $user) { return [ordered]@{ Exists = $false; Enabled = $null; PasswordLastSet = $null } }
        return [ordered]@{ Exists = $true; Enabled = $user.Enabled; PasswordLastSet = ConvertTo-IsoUtc -Value $user.PasswordLastSet }
    }
    try {
        $user = [ADSI]"WinNT://$env:COMPUTERNAME/CLIUSR,user"
        $flags = [int]$user.UserFlags.Value
        $passwordAge = [int]$user.PasswordAge.Value
    }
    catch {
        return [ordered]@{ Exists = $false; Enabled = $null; PasswordLastSet = $null }
    }
    $accountDisable = 0x2
    return [ordered]@{
        Exists = $true
        Enabled = ($flags -band $accountDisable) -eq 0
        PasswordLastSet = ConvertTo-IsoUtc -Value ([DateTime]::UtcNow.AddSeconds(-$passwordAge))
    }
}

Function Restart-NamedService {
    param ([Parameter(Mandatory)][string]$Name)

    Restart-Service -Name $Name -Force -ErrorAction Stop -WarningAction SilentlyContinue
    $service = Get-Service -Name $Name -ErrorAction Stop
    return [ordered]@{ Name = $service.Name; Status = $service.Status.ToString() }
}

Function Invoke-NativeCommand {
    <#
    .SYNOPSIS
    Runs an executable with an argument array (no command line is built from values) and returns its exit
    code and output lines.
    #>
    param (
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @()
    )

    # Windows PowerShell 5.1 turns stderr lines of a native program into error records when redirected;
    # with ErrorActionPreference Stop the first line would abort the call, so collect them as text.
    $ErrorActionPreference = 'Continue'
    if (-not (Test-Path -LiteralPath $FilePath)) {
        throw [System.Management.Automation.CommandNotFoundException]"The program '$FilePath' is not installed on this host."
    }
    $output = & $FilePath @ArgumentList 2>&1 | ForEach-Object { $_.ToString() }
    return [ordered]@{ ExitCode = $LASTEXITCODE; Output = @($output) }
}

Function Restart-AppPool {
    param ([Parameter(Mandatory)][string]$Name)

    if (Get-Module -ListAvailable -Name WebAdministration) {
        Import-WebAdministrationModule
        Restart-WebAppPool -Name $Name -ErrorAction Stop
        return
    }
    $appcmd = Join-Path -Path $env:windir -ChildPath 'System32\inetsrv\appcmd.exe'
    $result = Invoke-NativeCommand -FilePath $appcmd -ArgumentList @('recycle', 'apppool', "/apppool.name:$Name")
    if ($result.ExitCode -ne 0) {
        throw "appcmd failed to recycle the application pool '$Name' (exit code $($result.ExitCode)): $($result.Output -join ' ')"
    }
}

Function Invoke-IisReset {
    $iisreset = Join-Path -Path $env:windir -ChildPath 'System32\iisreset.exe'
    $result = Invoke-NativeCommand -FilePath $iisreset -ArgumentList @('/noforce')
    if ($result.ExitCode -ne 0) {
        throw "iisreset /noforce failed (exit code $($result.ExitCode)): $($result.Output -join ' ')"
    }
}

Function ConvertTo-CertReqResult {
    <#
    .SYNOPSIS
    Interprets certreq's output: an issued certificate is written to the output file; a pending request
    prints its RequestId and "Taken Under Submission"; a denial says "Denied".
    #>
    param (
        [Parameter(Mandatory)][System.Collections.IDictionary]$Run,
        [Parameter(Mandatory)][string]$CertificateFile,
        [AllowNull()][object]$KnownRequestId
    )

    $text = ($Run.Output | Where-Object { $_ -and $_.Trim() }) -join "`n"
    $requestId = $KnownRequestId
    if ($text -match 'RequestId:\s*"?(\d+)"?') { $requestId = [int]$Matches[1] }
    $certificate = $null
    if ((Test-Path -LiteralPath $CertificateFile) -and (Get-Item -LiteralPath $CertificateFile).Length -gt 0) {
        $certificate = [System.Convert]::ToBase64String([System.IO.File]::ReadAllBytes($CertificateFile))
    }
    $status = if ($certificate) { 'Issued' }
    elseif ($text -match 'Taken Under Submission|pending') { 'Pending' }
    elseif ($text -match 'Denied') { 'Denied' }
    else { 'Failed' }
    return [ordered]@{ Status = $status; RequestId = $requestId; Disposition = $text; Certificate = $certificate }
}

Function Invoke-CertReq {
    <#
    .SYNOPSIS
    Runs certreq.exe -submit or -retrieve in a private temporary directory that is always removed.
    -q suppresses every dialog (without it certreq may open a CA picker), -f overwrites, -binary writes a
    DER certificate (exchange-facts: AD CS enrolment).
    #>
    param (
        [Parameter(Mandatory)][ValidateSet('submit', 'retrieve')][string]$Mode,
        [Parameter(Mandatory)][string]$Config,
        [byte[]]$Request,
        [AllowNull()][string]$Template,
        [string[]]$Attributes = @(),
        [AllowNull()][object]$RequestId
    )

    $certreq = Join-Path -Path $env:windir -ChildPath 'System32\certreq.exe'
    $workDir = Join-Path -Path ([System.IO.Path]::GetTempPath()) -ChildPath ("exchange-pki-" + [Guid]::NewGuid().ToString('N'))
    $null = New-Item -Path $workDir -ItemType Directory -Force
    try {
        $certificateFile = Join-Path -Path $workDir -ChildPath 'issued.cer'
        $arguments = [System.Collections.Generic.List[string]]@("-$Mode", '-q', '-f', '-binary', '-config', $Config)
        if ($Mode -eq 'submit') {
            $requestFile = Join-Path -Path $workDir -ChildPath 'request.req'
            $pem = "-----BEGIN NEW CERTIFICATE REQUEST-----`r`n" +
            [System.Convert]::ToBase64String($Request, [System.Base64FormattingOptions]::InsertLineBreaks) +
            "`r`n-----END NEW CERTIFICATE REQUEST-----`r`n"
            [System.IO.File]::WriteAllText($requestFile, $pem, [System.Text.Encoding]::ASCII)
            $attributeList = @($Attributes | Where-Object { $_ })
            if ($Template) { $attributeList = @("CertificateTemplate:$Template") + $attributeList }
            if ($attributeList.Count -gt 0) {
                # certreq separates attribute pairs with the two characters \n (not a newline).
                $arguments.Add('-attrib')
                $arguments.Add($attributeList -join '\n')
            }
            $arguments.Add($requestFile)
        }
        else {
            $arguments.Add([string]$RequestId)
        }
        $arguments.Add($certificateFile)
        $run = Invoke-NativeCommand -FilePath $certreq -ArgumentList $arguments.ToArray()
        return ConvertTo-CertReqResult -Run $run -CertificateFile $certificateFile -KnownRequestId $RequestId
    }
    finally {
        Remove-Item -LiteralPath $workDir -Recurse -Force -ErrorAction SilentlyContinue
    }
}

Function Invoke-HostOperation {
    <#
    .SYNOPSIS
    Runs one host operation and returns @{ Value = <result> } (a holder, see Invoke-ExchangeOperation).
    #>
    param (
        [Parameter(Mandatory)][string]$Op,
        [Parameter(Mandatory)][AllowEmptyCollection()][hashtable]$Parameters
    )

    $ErrorActionPreference = 'Stop'
    $value = $null
    switch ($Op) {
        'host.info' { $value = Get-HostInfo }
        'host.certificates' {
            $value = Get-StoreCertificateList -Stores $Parameters['stores'] -SubjectPattern $Parameters['subject_pattern'] `
                -IssuerPattern $Parameters['issuer_pattern']
        }
        'host.iis_bindings' { $value = Get-IisBindingList }
        'host.set_iis_binding' {
            Set-IisBindingCertificate -Site $Parameters.site -BindingInformation $Parameters.binding_information `
                -CertificateHash $Parameters.certificate_hash -CertificateStore $Parameters['certificate_store']
        }
        'host.cluster' { $value = Get-ClusterFact }
        'host.add_certificate' { return Add-StoreCertificate -Store $Parameters.store -Certificate $Parameters.certificate }
        'host.restart_service' { $value = Restart-NamedService -Name $Parameters.name }
        'host.recycle_app_pool' { Restart-AppPool -Name $Parameters.name }
        'host.iis_reset' { Invoke-IisReset }
        'host.certreq_submit' {
            $value = Invoke-CertReq -Mode submit -Config $Parameters.config -Request $Parameters.request `
                -Template $Parameters['template'] -Attributes $Parameters['attributes']
        }
        'host.certreq_retrieve' {
            $value = Invoke-CertReq -Mode retrieve -Config $Parameters.config -RequestId $Parameters.request_id
        }
        'host.acme_challenge' {
            return Set-AcmeChallenge -Action $Parameters.action -Token $Parameters.token -Content $Parameters['content']
        }
        default { throw "no implementation for host operation '$Op'" }
    }
    return @{ Value = $value }
}

#endregion

#region main

$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

# The session options, checked again here (the controller checks them first): both credential options empty
# means "not given", one empty and the other not is an error (never drop a password silently); the URI must
# be an http(s) URL with a host and no credentials, whitespace or control characters.
$hasUsername = -not [string]::IsNullOrEmpty($module.Params.exchange_username)
$hasPassword = -not [string]::IsNullOrEmpty($module.Params.exchange_password)
if ($hasUsername -ne $hasPassword) {
    $module.FailJson("exchange_username and exchange_password must both be given (not empty) or both be left out")
}
if ($null -ne $module.Params.exchange_uri) {
    $uriText = [string]$module.Params.exchange_uri
    $parsedUri = $null
    $validUri = ($uriText -notmatch '[\x00-\x20\x7f]') -and [Uri]::TryCreate($uriText, [UriKind]::Absolute, [ref]$parsedUri)
    if (-not $validUri -or $parsedUri.Scheme -notin @('http', 'https') -or -not $parsedUri.Host -or $parsedUri.UserInfo) {
        $module.FailJson("exchange_uri must be an http:// or https:// URL with a host, without credentials, whitespace or control characters")
    }
}

# Validate the whole batch before running anything: an argument error fails the module and runs nothing.
$batch = [System.Collections.Generic.List[hashtable]]@()
$seenIds = New-Object -TypeName 'System.Collections.Generic.HashSet[string]' -ArgumentList ([System.StringComparer]::Ordinal)
foreach ($operation in $module.Params.operations) {
    if (-not $seenIds.Add($operation.id)) {
        $module.FailJson("operation id '$($operation.id)' is used more than once")
    }
    $parameters = ConvertTo-OperationParameter -Module $module -Operation $operation
    $batch.Add(@{ Id = $operation.id; Op = $operation.op; Definition = $OperationTable[$operation.op]; Parameters = $parameters })
}

$session = @{
    Attempted = $false; Opened = $false; Removed = $false; Uri = $null; Session = $null; ProxyModule = $null; OpenError = $null
    LocalServer = $null
}
$results = [System.Collections.Generic.List[object]]@()
$stopped = $false
try {
    foreach ($entry in $batch) {
        $result = [ordered]@{ id = $entry.Id; op = $entry.Op; status = 'skipped'; changed = $false }
        $changes = $entry.Definition.Changes
        if ($stopped) {
            $results.Add($result)
            continue
        }
        if ($changes -and $module.CheckMode) {
            # Second guard: the controller never sends changing operations in check mode.
            $result.check_mode = $true
            $results.Add($result)
            continue
        }
        try {
            $outcome = if ($entry.Definition.Kind -eq 'exchange') {
                Invoke-ExchangeOperation -Context $session -Module $module -Op $entry.Op -Parameters $entry.Parameters
            }
            else {
                Invoke-HostOperation -Op $entry.Op -Parameters $entry.Parameters
            }
            $result.status = 'ok'
            # A changing operation that found nothing to change says so (holder Changed = $false).
            $result.changed = [bool]$changes -and ($outcome.Changed -ne $false)
            $result.value = $outcome.Value
        }
        catch {
            $result.status = 'failed'
            $result.error = Get-ErrorRecordInfo -ErrorRecord $_
            # A failed changing operation stops the batch: what follows may depend on it.
            $stopped = [bool]$changes
        }
        $results.Add($result)
    }
}
finally {
    Close-ExchangeSession -Context $session
}

$module.Result.changed = @($results | Where-Object { $_.changed }).Count -gt 0
$module.Result.results = $results.ToArray()
$module.Result.exchange_session = if ($session.Attempted) {
    [ordered]@{ uri = $session.Uri; opened = $session.Opened; removed = $session.Removed }
}
else {
    $null
}
$module.ExitJson()

#endregion
