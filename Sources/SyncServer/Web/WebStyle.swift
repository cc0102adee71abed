import SyncEngine
import SyncModel
import SyncStore

/// The viewer's style sheet, embedded in every page (no build chain, no CDN): readable on a
/// reception desk screen, printable in black and white.
enum WebStyle {
    static let css = """
        *{box-sizing:border-box}
        html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;font-size:15px;color:#1b1f23;background:#f5f6f7}
        body{margin:0}
        main{max-width:1100px;margin:0 auto;padding:1rem 1.25rem 3rem}
        h1{font-size:1.5rem;margin:.5rem 0 1rem}
        h2{font-size:1.15rem;margin:1.75rem 0 .5rem;padding-bottom:.25rem;border-bottom:2px solid #d0d5da}
        a{color:#0b57a4}
        .banner{padding:.6rem 1.25rem;border-bottom:1px solid #0002;font-weight:600}
        .banner p{margin:.15rem 0}
        .banner .detail{font-weight:400}
        .state-online{background:#e3f4e6;color:#14532d}
        .state-degraded,.state-recovering,.state-paused,.state-starting,.state-initial-sync{background:#fff4d6;color:#5c3d00}
        .state-outage{background:#fde2e1;color:#7a1010}
        .topbar{display:flex;flex-wrap:wrap;align-items:center;gap:1rem;padding:.5rem 1.25rem;background:#fff;border-bottom:1px solid #d0d5da}
        .topbar nav{display:flex;gap:1rem;flex:1}
        .topbar .user{color:#4b5560}
        form.inline{display:inline;margin:0}
        button,.button{font:inherit;padding:.4rem .9rem;border:1px solid #0b57a4;border-radius:4px;background:#0b57a4;color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
        button.secondary,.button.secondary{background:#fff;color:#0b57a4}
        input,textarea{font:inherit;padding:.35rem .5rem;border:1px solid #9aa4ae;border-radius:4px}
        textarea{width:100%;min-height:10rem}
        label{display:block;font-weight:600;margin:.5rem 0 .2rem}
        .fields{display:flex;flex-wrap:wrap;gap:0 1.5rem;align-items:flex-end}
        .fields>div{min-width:12rem}
        .hint{color:#4b5560;font-size:.9rem}
        .error{background:#fde2e1;border:1px solid #e5a3a0;color:#7a1010;padding:.6rem .9rem;border-radius:4px}
        .error ul{margin:.3rem 0 0}
        .notice{background:#e3f4e6;border:1px solid #9bd1a5;color:#14532d;padding:.6rem .9rem;border-radius:4px}
        table{border-collapse:collapse;width:100%;background:#fff}
        th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #e1e4e8}
        th{background:#eef1f4;font-weight:600}
        table.dated td:first-child{white-space:nowrap}
        .badge{display:inline-block;font-size:.78rem;font-weight:600;padding:.05rem .45rem;border-radius:999px;background:#fff0c2;color:#5c3d00;border:1px solid #e0c060;margin-left:.35rem;white-space:nowrap}
        .badge.conflict,.badge.parked{background:#fde2e1;color:#7a1010;border-color:#e5a3a0}
        .flag{font-weight:700;color:#a01010}
        .critical{font-weight:700;color:#a01010}
        .demographics{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;background:#fff;padding:.75rem 1rem;border:1px solid #e1e4e8}
        .demographics dt{font-weight:600}
        .demographics dd{margin:0}
        details{background:#fff;border:1px solid #e1e4e8;margin:.3rem 0;padding:.3rem .6rem}
        pre.note{white-space:pre-wrap;font-family:inherit;margin:.5rem 0}
        .login{max-width:24rem;margin:4rem auto;background:#fff;padding:1.5rem;border:1px solid #d0d5da;border-radius:6px}
        .login input{width:100%}
        .login button{margin-top:1rem;width:100%}
        .actions{display:flex;gap:.75rem;margin:.5rem 0 1rem}
        .printhead{font-size:.85rem;color:#333;border-bottom:1px solid #999;padding-bottom:.3rem;margin-bottom:.5rem}
        .sheet{page-break-after:always;break-after:page;margin-bottom:2rem}
        .sheet:last-child{page-break-after:auto;break-after:auto}
        .sheet h2{margin-top:.75rem}
        body.print{background:#fff}
        body.print main{max-width:none;padding:.5rem 1rem}
        body.print table{font-size:.9rem}
        @media print{
          html{background:#fff;font-size:11pt}
          .topbar,.actions,.noprint{display:none}
          .banner{background:#fff!important;color:#000!important;border:1px solid #000}
          a{color:#000;text-decoration:none}
          th{background:#eee}
          details{border:none;padding:0}
          .badge{border:1px solid #000;background:#fff;color:#000}
        }
        """
}
