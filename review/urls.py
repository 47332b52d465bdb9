from django.urls import path, re_path

from review import cell_views, views

urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("history/", views.case_history, name="case_history"),
    path("cases/<int:pk>/review/", views.case_review, name="case_review"),
    path("cases/<int:pk>/review/panel/", views.case_review_panel, name="case_review_panel"),
    path("cases/<int:pk>/images/<int:image_pk>/review/", views.review_image, name="review_image"),
    path("cases/<int:pk>/images/<int:image_pk>/viewer/", views.image_viewer, name="image_viewer"),
    re_path(
        r"^cases/(?P<pk>\d+)/images/(?P<image_pk>\d+)/tiles/(?P<layer>original|cam|segmentation)\.dzi$",
        views.image_tiles_dzi,
        name="image_tiles_dzi",
    ),
    re_path(
        r"^cases/(?P<pk>\d+)/images/(?P<image_pk>\d+)/tiles/(?P<layer>original|cam|segmentation)_files/"
        r"(?P<level>\d{1,2})/(?P<col>\d{1,5})_(?P<row>\d{1,5})\.(?P<fmt>jpeg|png)$",
        views.image_tile,
        name="image_tile",
    ),
    path("cases/<int:pk>/assign/", views.case_assign, name="case_assign"),
    path("cases/<int:pk>/sign-out/", views.case_sign_out, name="case_sign_out"),
    path("cases/<int:pk>/amend/", views.case_amend, name="case_amend"),
    path("cases/<int:pk>/versions/<int:version>/", views.case_version, name="case_version"),
    path("cases/<int:pk>/audit/", views.case_audit, name="case_audit"),
    path("cases/<int:pk>/cells/", cell_views.case_cells, name="case_cells"),
    path("cases/<int:pk>/cells/differential/", cell_views.case_cells_differential, name="case_cells_differential"),
    path("cases/<int:pk>/cells/<int:cell_pk>/crop.jpg", cell_views.cell_crop, name="cell_crop"),
    path("cases/<int:pk>/cells/reclassify/", cell_views.cells_reclassify, name="cells_reclassify"),
    path("cases/<int:pk>/cells/add/", cell_views.cell_add, name="cell_add"),
]
